#include "model/guidance.hpp"

namespace ddpm::model {

Denoiser guided(Denoiser denoise, double w, int num_classes) {
  if (w == 0.0) return denoise;
  return [denoise = std::move(denoise), w, num_classes](const torch::Tensor& x, double sigma,
                                                        const torch::Tensor& labels) {
    if (!labels.defined()) return denoise(x, sigma, labels);
    const auto n = x.size(0);
    const auto both = denoise(torch::cat({x, x}), sigma, torch::cat({labels, torch::full_like(labels, num_classes)}));
    return both.slice(0, 0, n) * (1.0 + w) - both.slice(0, n, 2 * n) * w;
  };
}

}  // namespace ddpm::model
