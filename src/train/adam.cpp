#include "train/adam.hpp"

#include <cmath>

namespace ddpm::train {

Adam::Adam(torch::Tensor values, torch::Tensor grads, AdamSettings settings)
    : values_(std::move(values)), grads_(std::move(grads)), settings_(settings) {
  TORCH_CHECK(values_.dim() == 1 && values_.sizes() == grads_.sizes() && values_.options().type_equal(grads_.options()),
              "Adam: the values and gradients must be buffers of one shape, dtype and device");
  exp_avg_ = torch::zeros_like(values_);
  exp_avg_sq_ = torch::zeros_like(values_);
  denom_ = torch::empty_like(values_);
}

void Adam::step() {
  torch::NoGradGuard no_grad;
  const auto& s = settings_;
  ++steps_;
  const double bias_correction1 = 1.0 - std::pow(s.beta1, double(steps_));
  const double bias_correction2 = 1.0 - std::pow(s.beta2, double(steps_));
  if (s.weight_decay != 0.0) values_.mul_(1.0 - s.lr * s.weight_decay);
  exp_avg_.mul_(s.beta1).add_(grads_, 1.0 - s.beta1);
  exp_avg_sq_.mul_(s.beta2).addcmul_(grads_, grads_, 1.0 - s.beta2);
  // denom = sqrt(v) / sqrt(1 - beta2^t) + eps, into a buffer kept from step to step.
  torch::sqrt_out(denom_, exp_avg_sq_);
  denom_.div_(std::sqrt(bias_correction2)).add_(s.eps);
  values_.addcdiv_(exp_avg_, denom_, -s.lr / bias_correction1);
}

torch::Tensor clip_grad_norm(torch::Tensor& grads, double max_norm) {
  torch::NoGradGuard no_grad;
  const auto norm = grads.norm();
  if (max_norm > 0) grads.mul_((max_norm / (norm + 1e-6)).clamp_max(1.0));
  return norm;
}

}  // namespace ddpm::train
