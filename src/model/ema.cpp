#include "model/ema.hpp"

#include <algorithm>
#include <cmath>

#include "util/flat_tensors.hpp"

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
  live_values_ = util::flat_buffer(live.parameters());
  shadow_values_ = util::flat_buffer(shadow_.parameters());
}

double Ema::decay_at(std::int64_t updates) const {
  if (share_ > 0) return std::pow(0.5, 1.0 / std::max(1.0, share_ * double(updates)));
  return std::min(decay_, (1.0 + updates) / (10.0 + updates));
}

void Ema::update(torch::nn::Module& live) {
  torch::NoGradGuard no_grad;
  const double d = decay_at(updates_);
  // The live module must still be the one whose buffer the constructor took.
  TORCH_CHECK(live.parameters().front().storage().is_alias_of(live_values_.storage()),
              "Ema::update: the live module's parameters are no longer views of its buffer");
  shadow_values_.lerp_(live_values_, 1.0 - d);
  auto sb = live.buffers(), db = shadow_.buffers();
  for (std::size_t i = 0; i < sb.size(); ++i) db[i].copy_(sb[i]);
  ++updates_;
}

}  // namespace ddpm::model
