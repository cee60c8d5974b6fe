// Power-function EMAs and post-hoc EMA (Karras et al. 2024, "Analyzing and Improving the Training
// Dynamics of Diffusion Models", section 3): an average whose weight on the update at t' after t
// updates grows as t'^gamma, so that its length is a fixed share of training, sigma_rel (the
// standard deviation of its profile over t); and, from snapshots of two or more such averages
// taken during training, the weights of an average of any other length, reconstructed afterwards
// by least squares.
//
// Unlike EDM2, which fits the continuous profiles, the least squares here are over the exact
// discrete profiles of the averages this class tracks (see below), so a reconstruction that the
// snapshots can represent is exact, and every error bound is computable.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace ddpm::model {

// The profile t' -> (gamma + 1) t'^gamma / t^(gamma + 1) on [0, t] has standard deviation
// sigma_rel x t, sigma_rel = sqrt((gamma + 1) / ((gamma + 2)^2 (gamma + 3))).
double power_ema_sigma_rel(double gamma);
// Its inverse for gamma >= 0, i.e. 0 < sigma_rel <= sqrt(1/12) = 0.2887 (the largest root of
// gamma^3 + 7 gamma^2 + (16 - s^-2) gamma + 12 - s^-2 = 0); throws ddpm::Error outside.
double power_ema_gamma(double sigma_rel);

// After t updates, the update s <= t carries the weight (s^(g+1) - (s-1)^(g+1)) / t^(g+1), g = gamma:
// the telescoping product of update s's share (1 - beta_s) and the later betas, with
// beta_s = (1 - 1/s)^(g+1). Returned for s = 1..length (zero after t), float64.
torch::Tensor power_ema_profile(double gamma, std::int64_t updates, std::int64_t length);

// A power-function EMA of a flat parameter buffer (util/flat_tensors.hpp), kept where it is, in
// its dtype: after update t (t = 1, 2, ...), avg = beta_t avg + (1 - beta_t) live. Its first update
// copies the live values. The decision to update and the count stay on the device.
class PowerEma {
 public:
  PowerEma(torch::Tensor live_values, double sigma_rel);
  // Where `take` (a bool scalar where the values are) is false, nothing changes.
  void update(const torch::Tensor& take);
  const torch::Tensor& values() const { return values_; }
  double sigma_rel() const { return sigma_rel_; }
  double gamma() const { return gamma_; }
  // Waits for the device.
  std::int64_t updates() const;
  void set_updates(std::int64_t n);

 private:
  torch::Tensor live_, values_, updates_;  // updates_: a float64 scalar where the values are
  double sigma_rel_, gamma_;
};

// A stored average: its gamma and the updates it had seen.
struct EmaSnapshot {
  double gamma = 0.0;
  std::int64_t updates = 0;
};
// The coefficients x (float64, one per snapshot) whose combination sum_i x_i snapshot_i comes
// nearest, in the least-squares sense over the updates' weights, to the power EMA with `gamma`
// after `updates` (which may lie between or after the snapshots). `residual` receives the profile
// that is left, sum_i x_i profile_i - target profile (so the reconstruction's error is its dot
// product with the sequence of live weights).
torch::Tensor posthoc_coefficients(const std::vector<EmaSnapshot>& snapshots, double gamma, std::int64_t updates,
                                   torch::Tensor* residual = nullptr);

}  // namespace ddpm::model
