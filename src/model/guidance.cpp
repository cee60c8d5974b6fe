#include "model/guidance.hpp"

namespace ddpm::model {
namespace {
torch::Tensor extrapolate(const torch::Tensor& main, const torch::Tensor& guide, double w) {
  return main * (1.0 + w) - guide * w;
}
}  // namespace

Denoiser guided(Denoiser denoise, double w, int num_classes) {
  if (w == 0.0) return denoise;
  return [denoise = std::move(denoise), w, num_classes](const torch::Tensor& x, double sigma,
                                                        const torch::Tensor& labels) {
    if (!labels.defined()) return denoise(x, sigma, labels);
    const auto n = x.size(0);
    const auto both = denoise(torch::cat({x, x}), sigma, torch::cat({labels, torch::full_like(labels, num_classes)}));
    return extrapolate(both.slice(0, 0, n), both.slice(0, n, 2 * n), w);
  };
}

Denoiser autoguided(Denoiser denoise, Denoiser guide, double w) {
  if (w == 0.0) return denoise;
  return [denoise = std::move(denoise), guide = std::move(guide), w](const torch::Tensor& x, double sigma,
                                                                     const torch::Tensor& labels) {
    return extrapolate(denoise(x, sigma, labels), guide(x, sigma, labels), w);
  };
}

}  // namespace ddpm::model
