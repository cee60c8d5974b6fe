// The DDPM / DDIM mathematics over a precomputed schedule. Everything is computed in float64 and
// kept both as std::vector<double> (for tests and scalars) and as float32 tensors (for batches).
// Timesteps are 0-based: t = 0 is the paper's t = 1.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "config/config.hpp"

namespace ddpm::model {

struct Schedule {
  std::vector<double> betas, alphas, abar, abar_prev;
};

Schedule make_schedule(const config::DiffusionConfig& cfg);

// `steps` timesteps out of T, evenly spaced, descending, ending at 0.
std::vector<std::int64_t> respaced_timesteps(int T, int steps);

// A network as the loss and the denoiser call it: (input, level) -> output, labels bound.
using NetworkAt = std::function<torch::Tensor(const torch::Tensor& input, const torch::Tensor& level)>;
// The network's output for (x_t, t, labels), labels [B] long: a conditional model's classes (its
// num_classes meaning "no class"), or undefined for an unconditional model.
using Network =
    std::function<torch::Tensor(const torch::Tensor& x_t, const torch::Tensor& t, const torch::Tensor& labels)>;
// The one interface every sampler and every guidance works on (k-diffusion's): D(x, sigma,
// labels), the estimate of x0 from x = x0 + sigma n, n ~ N(0, I), all rows at noise level sigma.
// x is the variance-exploding form of x_t: x = x_t / sqrt(abar_t), sigma_t^2 = (1 - abar_t) / abar_t.
using Denoiser = std::function<torch::Tensor(const torch::Tensor& x, double sigma, const torch::Tensor& labels)>;

// EDM's preconditioning (Karras et al. 2022, table 1) at noise levels sigma (any shape):
// D(x, sigma) = c_skip x + c_out F(c_in x, c_noise), with c_skip = sd^2 / (sigma^2 + sd^2),
// c_out = sigma sd / sqrt(sigma^2 + sd^2), c_in = 1 / sqrt(sigma^2 + sd^2) and EDM's
// c_noise = ln(sigma) / 4 given to the U-Net x 1000, the span of its timestep input.
struct Preconditioning {
  torch::Tensor c_skip, c_out, c_in, c_noise;
};
Preconditioning edm_preconditioning(const torch::Tensor& sigma, double sigma_data);

class Diffusion {
 public:
  explicit Diffusion(const config::DiffusionConfig& cfg);

  int timesteps() const { return static_cast<int>(s_.betas.size()); }
  // diffusion.kind edm: noise levels are continuous sigmas, not timesteps.
  bool edm() const { return kind_ == "edm"; }
  // sigma_t = sqrt((1 - abar_t) / abar_t): the noise level of x_t / sqrt(abar_t) (EDM's x).
  double sigma(std::int64_t t) const { return sigma_[t]; }
  // The noise levels of n training examples: ddpm, timesteps uniform in [0, T) (long); edm,
  // sigma = exp(p_mean + p_std u), u ~ N(0, 1) (float). `gen` empty: the device's generator.
  torch::Tensor draw_levels(std::int64_t n, c10::optional<at::Generator> gen, const torch::TensorOptions& options) const;
  const Schedule& schedule() const { return s_; }

  // x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps
  torch::Tensor q_sample(const torch::Tensor& x0, const torch::Tensor& t, const torch::Tensor& eps) const;
  // The loss of `network` (which predicts diffusion.prediction) against its target at the levels
  // `t` of draw_levels: without `weights` the mean over everything of (target - output)^2 (for eps,
  // DDPM's simple loss); with `weights` (one per timestep, on the device, e.g. min_snr_weights) the
  // mean over the examples of weights[t] x the example's mean squared error. edm: EDM's loss, the
  // mean of (D(x0 + sigma eps, sigma) - x0)^2 / c_out^2, that is of F's error (no `weights`).
  torch::Tensor loss(const NetworkAt& network, const torch::Tensor& x0, const torch::Tensor& t, const torch::Tensor& eps,
                     const torch::Tensor& weights = {}) const;

  // What the network is trained to output: eps; x0; or v = sqrt(abar_t) eps - sqrt(1 - abar_t) x0.
  torch::Tensor target(const torch::Tensor& x0, const torch::Tensor& t, const torch::Tensor& eps) const;
  // x0 implied by the network's output at x_t, timestep t (eps: (x_t - sqrt(1 - abar) eps) /
  // sqrt(abar); x0: itself; v: sqrt(abar) x_t - sqrt(1 - abar) v): the one place these are written.
  torch::Tensor x0_from_output(const torch::Tensor& output, const torch::Tensor& x_t, std::int64_t t) const;
  // The trained timestep whose sigma_t is nearest `sigma` in log sigma (exact for a trained sigma_t).
  std::int64_t timestep_at(double sigma) const;
  // `network` as the denoiser D(x, sigma, labels). edm: EDM's D at any sigma. ddpm (eps, v, x0): the
  // network runs at timestep_at(sigma), on x_t = sqrt(abar_t) x; it was trained at integer
  // timesteps only, whose embedding between them is untrained, so the samplers hand a discrete
  // model its trained sigma_t exactly (sampling_levels). Refers to this Diffusion, which must
  // outlive it.
  Denoiser denoiser(Network network) const;
  // Min-SNR-gamma (Hang et al. 2023) in the prediction's form, SNR_t = abar_t / (1 - abar_t):
  // eps: min(SNR, gamma) / SNR; x0: min(SNR, gamma); v: min(SNR, gamma) / (SNR + 1). Each
  // equals min(SNR, gamma) on the x0 error, whatever the network predicts.
  double min_snr_weight(std::int64_t t, double gamma) const;
  // min_snr_weight of every timestep, float [T] on `device` (train.loss_weighting: min_snr).
  torch::Tensor min_snr_weights(double gamma, const torch::Device& device) const;

 private:
  // EDM's denoiser D(x, sigma) of a network F, for x = x0 + sigma n; sigma broadcasts against x.
  torch::Tensor edm_denoise(const NetworkAt& network, const torch::Tensor& x, const torch::Tensor& sigma) const;
  // v[t] for each t, shaped to broadcast against `like`. `v` must be one of the tables below: its
  // copy on each device is cached by its address.
  torch::Tensor gather(const std::vector<double>& v, const torch::Tensor& t, const torch::Tensor& like) const;
  Schedule s_;
  std::string prediction_, kind_;
  double sigma_data_, p_mean_, p_std_;
  std::vector<double> sqrt_abar_, sqrt_1m_abar_, sigma_, log_sigma_;
  mutable std::map<std::pair<const std::vector<double>*, std::string>, torch::Tensor> tables_;
};

}  // namespace ddpm::model
