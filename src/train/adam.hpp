// Adam (Kingma & Ba 2015) and AdamW (decoupled weight decay, Loshchilov & Hutter 2019) over a whole
// model at once: the parameters, their gradients and the two moments are each one buffer
// (util/flat_tensors.hpp), so a step is a handful of operations over the buffers, whatever the
// number of parameters, where torch::optim::Adam runs them per parameter tensor (on a GPU: a few
// kernels instead of thousands). Elementwise, the arithmetic is torch::optim::Adam's (and
// AdamW's), in the same order, so a step gives the same values to rounding.
#pragma once

#include <torch/torch.h>

namespace ddpm::train {

struct AdamSettings {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double weight_decay = 0.0;  // decoupled (AdamW): p -= lr * weight_decay * p before the Adam step
};

class Adam {
 public:
  // `values` and `grads`: the parameters and their gradients, end to end in the same order.
  Adam(torch::Tensor values, torch::Tensor grads, AdamSettings settings);

  void set_lr(double lr) { settings_.lr = lr; }
  const AdamSettings& settings() const { return settings_; }
  // One update of the values from the gradients as they are now.
  void step();

  // The moments, laid out as the values, and the number of steps taken (a checkpoint's state).
  const torch::Tensor& exp_avg() const { return exp_avg_; }
  const torch::Tensor& exp_avg_sq() const { return exp_avg_sq_; }
  std::int64_t steps() const { return steps_; }
  void set_steps(std::int64_t n) { steps_ = n; }

 private:
  torch::Tensor values_, grads_, exp_avg_, exp_avg_sq_, denom_;
  AdamSettings settings_;
  std::int64_t steps_ = 0;
};

// Clips a gradient buffer to L2 norm `max_norm` (0: off, the norm is still measured) as
// torch::nn::utils::clip_grad_norm_ does, by min(1, max_norm / (norm + 1e-6)), but without reading
// the norm first; returns the norm before, as a scalar tensor where the gradients are.
torch::Tensor clip_grad_norm(torch::Tensor& grads, double max_norm);

}  // namespace ddpm::train
