// Exponential moving average of a module's parameters, kept in a shadow module of the same
// architecture so that sampling can use it directly.
#pragma once

#include <torch/torch.h>

namespace ddpm::model {

class Ema {
 public:
  // `shadow` must have the same architecture as the live module; it starts as a copy of `live`.
  Ema(torch::nn::Module& live, torch::nn::Module& shadow, double decay);

  // Warm-up: decay_t = min(decay, (1 + t) / (10 + t)), t = updates done so far, so that short runs
  // are not stuck near the initial weights.
  double decay_at(std::int64_t updates) const;
  // shadow = d * shadow + (1 - d) * live; buffers are copied.
  void update(torch::nn::Module& live);
  std::int64_t updates() const { return updates_; }
  void set_updates(std::int64_t n) { updates_ = n; }

 private:
  torch::nn::Module& shadow_;
  double decay_;
  std::int64_t updates_ = 0;
};

// Copies every parameter and buffer of `from` into `to` (same architecture).
void copy_weights(torch::nn::Module& from, torch::nn::Module& to);

}  // namespace ddpm::model
