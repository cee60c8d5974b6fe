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
  const auto scalar = values_.options().dtype(torch::kFloat64);
  lr_ = torch::full({}, settings_.lr, scalar);
  steps_ = torch::zeros({}, scalar);
  take_all_ = torch::ones({}, scalar.dtype(torch::kBool));
}

void Adam::set_lr(double lr) { lr_.fill_(lr); }

std::int64_t Adam::steps() const { return static_cast<std::int64_t>(steps_.item<double>()); }

void Adam::set_steps(std::int64_t n) { steps_.fill_(double(n)); }

void Adam::step() { step(take_all_); }

void Adam::step(const torch::Tensor& take) {
  torch::NoGradGuard no_grad;
  const auto& s = settings_;
  // With zero gradients and every factor 1 (or a step size of 0), a skipped step adds exact zeros.
  grads_.masked_fill_(take.logical_not(), 0.0);
  const auto taken = take.to(torch::kFloat64);
  steps_.add_(taken);
  // At least 1: a first step that is skipped must not divide by 1 - beta^0 = 0.
  const auto t = steps_.clamp_min(1.0);
  const auto bias_correction1 = 1.0 - torch::pow(s.beta1, t);
  const auto bias_correction2 = 1.0 - torch::pow(s.beta2, t);
  if (s.weight_decay != 0.0) values_.mul_(1.0 - lr_ * (s.weight_decay * taken));
  exp_avg_.mul_(1.0 + (s.beta1 - 1.0) * taken).add_(grads_, 1.0 - s.beta1);
  exp_avg_sq_.mul_(1.0 + (s.beta2 - 1.0) * taken).addcmul_(grads_, grads_, 1.0 - s.beta2);
  // The step, size x m / (sqrt(v) / c + eps) with c = sqrt(1 - beta2^t), is computed as
  // m / ((sqrt(v) + eps c) / (size x c)): four passes, as torch's, with the tensor step size in the
  // denominator (addcdiv_ takes only a host number). A skipped step's size is -0, its denominator
  // -inf, and m / -inf an exact zero.
  const auto c = torch::sqrt(bias_correction2);
  torch::sqrt_out(denom_, exp_avg_sq_);
  denom_.add_(s.eps * c).div_(-lr_ * taken / bias_correction1 * c);
  values_.addcdiv_(exp_avg_, denom_);
}

torch::Tensor clip_grad_norm(torch::Tensor& grads, double max_norm) {
  torch::NoGradGuard no_grad;
  const auto norm = grads.norm();
  if (max_norm > 0) grads.mul_((max_norm / (norm + 1e-6)).clamp_max(1.0));
  return norm;
}

}  // namespace ddpm::train
