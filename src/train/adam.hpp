// Adam (Kingma & Ba 2015) and AdamW (decoupled weight decay, Loshchilov & Hutter 2019) over a whole
// model at once: the parameters, their gradients and the two moments are each one buffer
// (util/flat_tensors.hpp), so a step is a handful of operations over the buffers, whatever the
// number of parameters, where torch::optim::Adam runs them per parameter tensor (on a GPU: a few
// kernels instead of thousands). Elementwise, the arithmetic is torch::optim::Adam's (and
// AdamW's), in the same order up to where the step size enters, so a step gives the same values to
// rounding.
//
// The learning rate, the step count and the decision to take a step are tensors where the values
// are, so that an update never waits for the device (nor reads the host, in a CUDA graph).
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

  // Held in a tensor where the values are, which the next step reads.
  void set_lr(double lr);
  // One update of the values from the gradients as they are now.
  void step();
  // The same where `take` (a bool scalar where the values are) is true; where it is false, the
  // values, the moments and the step count stay exactly as they were, whatever the gradients hold
  // (a non-finite gradient is how a step comes to be skipped: the gradients are zeroed).
  void step(const torch::Tensor& take);

  // The moments, laid out as the values, and the number of steps taken (a checkpoint's state);
  // steps() waits for the device.
  const torch::Tensor& exp_avg() const { return exp_avg_; }
  const torch::Tensor& exp_avg_sq() const { return exp_avg_sq_; }
  std::int64_t steps() const;
  void set_steps(std::int64_t n);

 private:
  torch::Tensor values_, grads_, exp_avg_, exp_avg_sq_, denom_;
  AdamSettings settings_;  // its lr the first only: lr_ holds the current one
  torch::Tensor lr_, steps_, take_all_;  // float64 scalars, and true, where the values are
};

// Clips a gradient buffer to L2 norm `max_norm` (0: off, the norm is still measured) as
// torch::nn::utils::clip_grad_norm_ does, by min(1, max_norm / (norm + 1e-6)), but without reading
// the norm first; returns the norm before, as a scalar tensor where the gradients are.
torch::Tensor clip_grad_norm(torch::Tensor& grads, double max_norm);

}  // namespace ddpm::train
