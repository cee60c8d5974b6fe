#include "model/guidance.hpp"

namespace ddpm::model {

Network guided(Network net, double w, int num_classes) {
  if (w == 0.0) return net;
  return [net = std::move(net), w, num_classes](const torch::Tensor& x, const torch::Tensor& t,
                                                const torch::Tensor& labels) {
    if (!labels.defined()) return net(x, t, labels);
    const auto n = x.size(0);
    const auto out = net(torch::cat({x, x}), torch::cat({t, t}), torch::cat({labels, torch::full_like(labels, num_classes)}));
    return out.slice(0, 0, n) * (1.0 + w) - out.slice(0, n, 2 * n) * w;
  };
}

}  // namespace ddpm::model
