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
  std::vector<double> posterior_variance;  // beta~_t = beta_t (1 - abar_{t-1}) / (1 - abar_t)
};

Schedule make_schedule(const config::DiffusionConfig& cfg);

// sigma_t of DDIM for a step from abar_t to abar_prev (Song et al. eq. 16).
double ddim_sigma(double abar_t, double abar_prev, double eta);

// `steps` timesteps out of T, evenly spaced, descending, ending at 0.
std::vector<std::int64_t> respaced_timesteps(int T, int steps);

// A function of (x_t, t): the network's output (what diffusion.prediction names), or, after
// Diffusion::eps_model, the noise estimate that every sampler takes.
using EpsModel = std::function<torch::Tensor(const torch::Tensor& x_t, const torch::Tensor& t)>;
// The network's output for (x_t, t, labels), labels [B] long: a conditional model's classes (its
// num_classes meaning "no class"), or undefined for an unconditional model. The samplers bind each
// batch's labels and turn it into an EpsModel with Diffusion::eps_model.
using Network =
    std::function<torch::Tensor(const torch::Tensor& x_t, const torch::Tensor& t, const torch::Tensor& labels)>;

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
  torch::Tensor loss(const EpsModel& network, const torch::Tensor& x0, const torch::Tensor& t, const torch::Tensor& eps,
                     const torch::Tensor& weights = {}) const;

  // What the network is trained to output: eps; x0; or v = sqrt(abar_t) eps - sqrt(1 - abar_t) x0.
  torch::Tensor target(const torch::Tensor& x0, const torch::Tensor& t, const torch::Tensor& eps) const;
  // The noise estimate implied by the network's output at x_t (eps: itself; x0: from x_t and x0;
  // v: sqrt(abar_t) v + sqrt(1 - abar_t) x_t).
  torch::Tensor eps_from_output(const torch::Tensor& output, const torch::Tensor& x_t, const torch::Tensor& t) const;
  // `network` as a noise estimator, for the samplers (the identity wrapper for eps prediction).
  // edm: at timestep t, eps = (x - D(x, sigma_t)) / sigma_t with x = x_t / sqrt(abar_t), so that
  // every sampler walks the schedule's noise levels sigma_t = sqrt((1 - abar_t) / abar_t).
  // The returned function refers to this Diffusion, which must outlive it.
  EpsModel eps_model(EpsModel network) const;
  // Min-SNR-gamma (Hang et al. 2023) in the prediction's form, SNR_t = abar_t / (1 - abar_t):
  // eps: min(SNR, gamma) / SNR; x0: min(SNR, gamma); v: min(SNR, gamma) / (SNR + 1). Each
  // equals min(SNR, gamma) on the x0 error, whatever the network predicts.
  double min_snr_weight(std::int64_t t, double gamma) const;
  // min_snr_weight of every timestep, float [T] on `device` (train.loss_weighting: min_snr).
  torch::Tensor min_snr_weights(double gamma, const torch::Device& device) const;

  // EDM's denoiser D(x, sigma) of a network F, for x = x0 + sigma n; sigma broadcasts against x.
  torch::Tensor edm_denoise(const EpsModel& network, const torch::Tensor& x, const torch::Tensor& sigma) const;

  torch::Tensor predict_x0(const torch::Tensor& x_t, const torch::Tensor& t, const torch::Tensor& eps) const;
  // Mean of q(x_{t-1} | x_t, x0).
  torch::Tensor posterior_mean(const torch::Tensor& x0, const torch::Tensor& x_t, const torch::Tensor& t) const;
  // The same mean written through eps: 1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - abar_t) eps).
  torch::Tensor posterior_mean_eps(const torch::Tensor& x_t, const torch::Tensor& t, const torch::Tensor& eps) const;

  // One ancestral step x_t -> x_{t-1} for a scalar t (all images at the same step).
  // `posterior_var` picks sigma^2 = beta~_t, else beta_t; no noise is added at t = 0.
  torch::Tensor ddpm_step(const torch::Tensor& x_t, std::int64_t t, const torch::Tensor& eps,
                          const torch::Tensor& z, bool posterior_var, bool clip_x0) const;
  // One DDIM step from t to t_prev (t_prev = -1 means the final step to x0).
  torch::Tensor ddim_step(const torch::Tensor& x_t, std::int64_t t, std::int64_t t_prev,
                          const torch::Tensor& eps, const torch::Tensor& z, double eta, bool clip_x0) const;

 private:
  // v[t] for each t, shaped to broadcast against `like`. `v` must be one of the tables below: its
  // copy on each device is cached by its address.
  torch::Tensor gather(const std::vector<double>& v, const torch::Tensor& t, const torch::Tensor& like) const;
  Schedule s_;
  std::string prediction_, kind_;
  double sigma_data_, p_mean_, p_std_;
  std::vector<double> sqrt_abar_, sqrt_1m_abar_, sigma_;
  std::vector<double> post_c0_, post_ct_;            // posterior mean = c0 x0 + ct x_t
  std::vector<double> inv_sqrt_alpha_, eps_coef_;    // ... = 1/sqrt(alpha) (x_t - eps_coef eps)
  mutable std::map<std::pair<const std::vector<double>*, std::string>, torch::Tensor> tables_;
};

}  // namespace ddpm::model
