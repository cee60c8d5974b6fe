#include "model/ema.hpp"

#include <algorithm>
#include <cmath>

namespace ddpm::model {

void copy_weights(torch::nn::Module& from, torch::nn::Module& to) {
  torch::NoGradGuard no_grad;
  auto src = from.parameters(), dst = to.parameters();
  TORCH_CHECK(src.size() == dst.size(), "copy_weights: modules differ in parameter count");
  for (std::size_t i = 0; i < src.size(); ++i) dst[i].copy_(src[i]);
  auto sb = from.buffers(), db = to.buffers();
  for (std::size_t i = 0; i < sb.size(); ++i) db[i].copy_(sb[i]);
}

Ema::Ema(torch::nn::Module& live, torch::nn::Module& shadow, double decay, double share)
    : shadow_(shadow), decay_(decay), share_(share) {
  copy_weights(live, shadow_);
  for (auto& p : shadow_.parameters()) p.set_requires_grad(false);
}

double Ema::decay_at(std::int64_t updates) const {
  if (share_ > 0) return std::pow(0.5, 1.0 / std::max(1.0, share_ * double(updates)));
  return std::min(decay_, (1.0 + updates) / (10.0 + updates));
}

void Ema::update(torch::nn::Module& live) {
  torch::NoGradGuard no_grad;
  const double d = decay_at(updates_);
  auto src = live.parameters(), dst = shadow_.parameters();
  for (std::size_t i = 0; i < src.size(); ++i) dst[i].mul_(d).add_(src[i], 1.0 - d);
  auto sb = live.buffers(), db = shadow_.buffers();
  for (std::size_t i = 0; i < sb.size(); ++i) db[i].copy_(sb[i]);
  ++updates_;
}

}  // namespace ddpm::model
