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
  const auto scalar = shadow_values_.options().dtype(torch::kFloat64);
  updates_ = torch::zeros({}, scalar);
  take_all_ = torch::ones({}, scalar.dtype(torch::kBool));
}

torch::Tensor Ema::decay_of(const torch::Tensor& updates) const {
  if (share_ > 0) return torch::pow(0.5, 1.0 / (share_ * updates).clamp_min(1.0));
  return ((1.0 + updates) / (10.0 + updates)).clamp_max(decay_);
}

double Ema::decay_at(std::int64_t updates) const {
  return decay_of(torch::full({}, double(updates), torch::kFloat64)).item<double>();
}

std::int64_t Ema::updates() const { return static_cast<std::int64_t>(updates_.item<double>()); }

void Ema::set_updates(std::int64_t n) { updates_.fill_(double(n)); }

void Ema::update(torch::nn::Module& live) { update(live, take_all_); }

void Ema::update(torch::nn::Module& live, const torch::Tensor& take) {
  torch::NoGradGuard no_grad;
  // The live module must still be the one whose buffer the constructor took.
  TORCH_CHECK(live.parameters().front().storage().is_alias_of(live_values_.storage()),
              "Ema::update: the live module's parameters are no longer views of its buffer");
  // d x shadow + w x live with w = 1 - d, or 0 to skip (then d = 1): two passes, a third of a
  // lerp's time on the CPU.
  const auto weight = (1.0 - decay_of(updates_)) * take.to(torch::kFloat64);
  shadow_values_.mul_(1.0 - weight).addcmul_(live_values_, weight.to(shadow_values_.scalar_type()));
  auto sb = live.buffers(), db = shadow_.buffers();
  for (std::size_t i = 0; i < sb.size(); ++i) db[i].copy_(torch::where(take, sb[i], db[i]));
  updates_.add_(take);
}

}  // namespace ddpm::model
