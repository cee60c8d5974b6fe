// Exponential moving average of a module's parameters, kept in a shadow module of the same
// architecture so that sampling can use it directly. The parameters of both modules are views of
// one buffer each (util/flat_tensors.hpp), so that an update is two operations over the whole model.
#pragma once

#include <torch/torch.h>

namespace ddpm::model {

class Ema {
 public:
  // `shadow` must have the same architecture as the live module; it starts as a copy of `live`.
  // The parameters of `live` that are not yet views of one buffer are moved into one.
  // `share` = 0: a fixed `decay`, warmed up; `share` > 0: a half-life that grows with training.
  Ema(torch::nn::Module& live, torch::nn::Module& shadow, double decay, double share = 0.0);

  // The decay of update t (t = updates done so far). Fixed: min(decay, (1 + t) / (10 + t)), so that
  // short runs are not stuck near the initial weights. With a share s: the half-life is
  // h_t = max(1, s t) updates (EDM's half-life as a share of the images seen), decay_t = 0.5^(1 / h_t),
  // so the average always spans the same share of training whatever its length.
  double decay_at(std::int64_t updates) const;
  // shadow = d * shadow + (1 - d) * live; buffers are copied.
  void update(torch::nn::Module& live);
  // The same where `take` (a bool scalar where the parameters are) is true, else nothing changes:
  // the decay, the update count and the decision stay on the device.
  void update(torch::nn::Module& live, const torch::Tensor& take);
  // Waits for the device.
  std::int64_t updates() const;
  void set_updates(std::int64_t n);

 private:
  // decay_at's formula on a float64 tensor of update counts.
  torch::Tensor decay_of(const torch::Tensor& updates) const;

  torch::nn::Module& shadow_;
  torch::Tensor live_values_, shadow_values_;
  double decay_, share_;
  torch::Tensor updates_, take_all_;  // a float64 scalar, and true, where the parameters are
};

// Copies every parameter and buffer of `from` into `to` (same architecture).
void copy_weights(torch::nn::Module& from, torch::nn::Module& to);

}  // namespace ddpm::model
