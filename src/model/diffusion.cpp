#include "model/diffusion.hpp"

#include <cmath>

namespace ddpm::model {

Schedule make_schedule(const config::DiffusionConfig& cfg) {
  const int T = cfg.timesteps;
  Schedule s;
  s.betas.resize(T);
  if (cfg.schedule == "linear") {
    for (int t = 0; t < T; ++t)
      s.betas[t] = cfg.beta_start + (cfg.beta_end - cfg.beta_start) * t / double(T - 1);
  } else {
    // Nichol & Dhariwal: abar(t) = f(t)/f(0), f(t) = cos^2(((t/T + s)/(1 + s)) pi/2), betas <= 0.999.
    auto f = [&](double t) {
      const double c = std::cos((t / T + cfg.cosine_s) / (1.0 + cfg.cosine_s) * M_PI / 2.0);
      return c * c;
    };
    for (int t = 0; t < T; ++t) s.betas[t] = std::min(1.0 - f(t + 1) / f(t), 0.999);
  }
  s.alphas.resize(T);
  s.abar.resize(T);
  s.abar_prev.resize(T);
  s.posterior_variance.resize(T);
  double prod = 1.0;
  for (int t = 0; t < T; ++t) {
    s.alphas[t] = 1.0 - s.betas[t];
    s.abar_prev[t] = prod;
    prod *= s.alphas[t];
    s.abar[t] = prod;
    s.posterior_variance[t] = s.betas[t] * (1.0 - s.abar_prev[t]) / (1.0 - s.abar[t]);
  }
  return s;
}

double ddim_sigma(double abar_t, double abar_prev, double eta) {
  return eta * std::sqrt((1.0 - abar_prev) / (1.0 - abar_t) * (1.0 - abar_t / abar_prev));
}

std::vector<std::int64_t> respaced_timesteps(int T, int steps) {
  std::vector<std::int64_t> ts(steps);
  for (int i = 0; i < steps; ++i)
    ts[steps - 1 - i] = static_cast<std::int64_t>(std::llround(double(i) * (T - 1) / std::max(steps - 1, 1)));
  if (steps == 1) ts[0] = T - 1;
  return ts;
}

Preconditioning edm_preconditioning(const torch::Tensor& sigma, double sigma_data) {
  const double sd2 = sigma_data * sigma_data;
  const auto inv_norm = (sigma * sigma + sd2).rsqrt();
  return {sd2 * inv_norm.pow(2), sigma * sigma_data * inv_norm, inv_norm, sigma.log() * 250.0};
}

Diffusion::Diffusion(const config::DiffusionConfig& cfg)
    : s_(make_schedule(cfg)),
      prediction_(cfg.prediction),
      kind_(cfg.kind),
      sigma_data_(cfg.sigma_data),
      p_mean_(cfg.p_mean),
      p_std_(cfg.p_std) {
  for (std::size_t i = 0; i < s_.betas.size(); ++i) {
    sigma_.push_back(std::sqrt((1.0 - s_.abar[i]) / s_.abar[i]));
    sqrt_abar_.push_back(std::sqrt(s_.abar[i]));
    sqrt_1m_abar_.push_back(std::sqrt(1.0 - s_.abar[i]));
    post_c0_.push_back(std::sqrt(s_.abar_prev[i]) * s_.betas[i] / (1.0 - s_.abar[i]));
    post_ct_.push_back(std::sqrt(s_.alphas[i]) * (1.0 - s_.abar_prev[i]) / (1.0 - s_.abar[i]));
    inv_sqrt_alpha_.push_back(1.0 / std::sqrt(s_.alphas[i]));
    eps_coef_.push_back(s_.betas[i] / sqrt_1m_abar_[i]);
  }
}

torch::Tensor Diffusion::gather(const std::vector<double>& v, const torch::Tensor& t,
                                const torch::Tensor& like) const {
  // One copy of each table per device, made on first use: a host-to-device copy per call would
  // cost a transfer every step and cannot be captured into a CUDA graph.
  auto& table = tables_[{&v, like.device().str()}];
  if (!table.defined())
    table = torch::tensor(std::vector<float>(v.begin(), v.end()), torch::TensorOptions().device(like.device()));
  auto out = table.index_select(0, t.to(like.device(), torch::kLong)).to(like.scalar_type());
  std::vector<std::int64_t> shape(like.dim(), 1);
  shape[0] = t.size(0);
  return out.view(shape);
}

torch::Tensor Diffusion::q_sample(const torch::Tensor& x0, const torch::Tensor& t, const torch::Tensor& eps) const {
  return gather(sqrt_abar_, t, x0) * x0 + gather(sqrt_1m_abar_, t, x0) * eps;
}

torch::Tensor Diffusion::target(const torch::Tensor& x0, const torch::Tensor& t, const torch::Tensor& eps) const {
  if (prediction_ == "x0") return x0;
  if (prediction_ == "v") return gather(sqrt_abar_, t, x0) * eps - gather(sqrt_1m_abar_, t, x0) * x0;
  return eps;
}

torch::Tensor Diffusion::eps_from_output(const torch::Tensor& output, const torch::Tensor& x_t,
                                         const torch::Tensor& t) const {
  if (prediction_ == "x0") return (x_t - gather(sqrt_abar_, t, x_t) * output) / gather(sqrt_1m_abar_, t, x_t);
  if (prediction_ == "v") return gather(sqrt_abar_, t, x_t) * output + gather(sqrt_1m_abar_, t, x_t) * x_t;
  return output;
}

torch::Tensor Diffusion::draw_levels(std::int64_t n, c10::optional<at::Generator> gen,
                                     const torch::TensorOptions& options) const {
  if (!edm()) return torch::randint(0, timesteps(), {n}, std::move(gen), options.dtype(torch::kLong));
  return (torch::randn({n}, std::move(gen), options.dtype(torch::kFloat32)) * p_std_ + p_mean_).exp();
}

torch::Tensor Diffusion::edm_denoise(const EpsModel& network, const torch::Tensor& x, const torch::Tensor& sigma) const {
  const auto p = edm_preconditioning(sigma.to(torch::kFloat32), sigma_data_);
  const auto out = network(p.c_in * x, p.c_noise.flatten()).to(torch::kFloat32);
  return p.c_skip * x + p.c_out * out;
}

EpsModel Diffusion::eps_model(EpsModel network) const {
  if (edm()) {
    return [this, network = std::move(network)](const torch::Tensor& x_t, const torch::Tensor& t) {
      const auto sigma = gather(sigma_, t, x_t);
      const auto x = x_t / gather(sqrt_abar_, t, x_t);
      return (x - edm_denoise(network, x, sigma)) / sigma;
    };
  }
  if (prediction_ == "eps") return network;
  return [this, network = std::move(network)](const torch::Tensor& x, const torch::Tensor& t) {
    return eps_from_output(network(x, t), x, t);
  };
}

double Diffusion::min_snr_weight(std::int64_t t, double gamma) const {
  const double snr = s_.abar[t] / (1.0 - s_.abar[t]);
  const double clipped = std::min(snr, gamma);
  if (prediction_ == "x0") return clipped;
  if (prediction_ == "v") return clipped / (snr + 1.0);
  return clipped / snr;
}

torch::Tensor Diffusion::min_snr_weights(double gamma, const torch::Device& device) const {
  std::vector<float> w;
  for (int t = 0; t < timesteps(); ++t) w.push_back(static_cast<float>(min_snr_weight(t, gamma)));
  return torch::tensor(w).to(device);
}

torch::Tensor Diffusion::loss(const EpsModel& network, const torch::Tensor& x0, const torch::Tensor& t,
                              const torch::Tensor& eps, const torch::Tensor& weights) const {
  if (edm()) {
    std::vector<std::int64_t> shape(x0.dim(), 1);
    shape[0] = x0.size(0);
    const auto sigma = t.to(x0.device(), torch::kFloat32).view(shape);
    const auto c_out = edm_preconditioning(sigma, sigma_data_).c_out;
    return ((edm_denoise(network, x0 + sigma * eps, sigma) - x0) / c_out).pow(2).mean();
  }
  const auto out = network(q_sample(x0, t, eps), t).to(torch::kFloat32);
  const auto goal = target(x0, t, eps);
  if (!weights.defined()) return torch::mse_loss(out, goal);
  return ((out - goal).pow(2).flatten(1).mean(1) * weights.index_select(0, t.to(torch::kLong))).mean();
}

torch::Tensor Diffusion::predict_x0(const torch::Tensor& x_t, const torch::Tensor& t, const torch::Tensor& eps) const {
  return (x_t - gather(sqrt_1m_abar_, t, x_t) * eps) / gather(sqrt_abar_, t, x_t);
}

torch::Tensor Diffusion::posterior_mean(const torch::Tensor& x0, const torch::Tensor& x_t, const torch::Tensor& t) const {
  return gather(post_c0_, t, x0) * x0 + gather(post_ct_, t, x_t) * x_t;
}

torch::Tensor Diffusion::posterior_mean_eps(const torch::Tensor& x_t, const torch::Tensor& t,
                                            const torch::Tensor& eps) const {
  return gather(inv_sqrt_alpha_, t, x_t) * (x_t - gather(eps_coef_, t, x_t) * eps);
}

torch::Tensor Diffusion::ddpm_step(const torch::Tensor& x_t, std::int64_t t, const torch::Tensor& eps,
                                   const torch::Tensor& z, bool posterior_var, bool clip_x0) const {
  // Scalar coefficients in float64, applied once per step; no per-step table uploads.
  const double c0 = std::sqrt(s_.abar_prev[t]) * s_.betas[t] / (1.0 - s_.abar[t]);
  const double ct = std::sqrt(s_.alphas[t]) * (1.0 - s_.abar_prev[t]) / (1.0 - s_.abar[t]);
  auto x0 = (x_t - sqrt_1m_abar_[t] * eps) * (1.0 / sqrt_abar_[t]);
  if (clip_x0) x0 = x0.clamp(-1.0, 1.0);
  auto mean = x0 * c0 + x_t * ct;
  if (t == 0) return mean;
  const double var = posterior_var ? s_.posterior_variance[t] : s_.betas[t];
  return mean + std::sqrt(var) * z;
}

torch::Tensor Diffusion::ddim_step(const torch::Tensor& x_t, std::int64_t t, std::int64_t t_prev,
                                   const torch::Tensor& eps, const torch::Tensor& z, double eta,
                                   bool clip_x0) const {
  const double abar_t = s_.abar[t];
  const double abar_prev = t_prev >= 0 ? s_.abar[t_prev] : 1.0;
  auto x0 = (x_t - std::sqrt(1.0 - abar_t) * eps) * (1.0 / std::sqrt(abar_t));
  // With clipping, eps is re-derived from the clipped x0 so that the step stays consistent.
  auto e = eps;
  if (clip_x0) {
    x0 = x0.clamp(-1.0, 1.0);
    e = (x_t - std::sqrt(abar_t) * x0) * (1.0 / std::sqrt(1.0 - abar_t));
  }
  if (t_prev < 0) return x0;
  const double sigma = ddim_sigma(abar_t, abar_prev, eta);
  auto out = x0 * std::sqrt(abar_prev) + e * std::sqrt(std::max(1.0 - abar_prev - sigma * sigma, 0.0));
  if (sigma > 0.0) out = out + sigma * z;
  return out;
}

}  // namespace ddpm::model
