#include "model/diffusion.hpp"

#include <algorithm>
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
  double prod = 1.0;
  for (int t = 0; t < T; ++t) {
    s.alphas[t] = 1.0 - s.betas[t];
    s.abar_prev[t] = prod;
    prod *= s.alphas[t];
    s.abar[t] = prod;
  }
  return s;
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
    log_sigma_.push_back(std::log(sigma_.back()));
    sqrt_abar_.push_back(std::sqrt(s_.abar[i]));
    sqrt_1m_abar_.push_back(std::sqrt(1.0 - s_.abar[i]));
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

torch::Tensor Diffusion::x0_from_output(const torch::Tensor& output, const torch::Tensor& x_t, std::int64_t t) const {
  if (prediction_ == "x0") return output;
  if (prediction_ == "v") return x_t * sqrt_abar_[t] - output * sqrt_1m_abar_[t];
  return (x_t - output * sqrt_1m_abar_[t]) * (1.0 / sqrt_abar_[t]);
}

std::int64_t Diffusion::timestep_at(double sigma) const {
  const double target = std::log(sigma);
  // sigma grows with t.
  const auto it = std::lower_bound(log_sigma_.begin(), log_sigma_.end(), target);
  std::int64_t t = std::min<std::int64_t>(it - log_sigma_.begin(), timesteps() - 1);
  if (t > 0 && target - log_sigma_[t - 1] < log_sigma_[t] - target) --t;
  return t;
}

Denoiser Diffusion::denoiser(Network network) const {
  if (edm()) {
    return [this, network = std::move(network)](const torch::Tensor& x, double sigma, const torch::Tensor& labels) {
      const auto at = [&](const torch::Tensor& in, const torch::Tensor& c_noise) { return network(in, c_noise, labels); };
      std::vector<std::int64_t> shape(x.dim(), 1);
      shape[0] = x.size(0);
      return edm_denoise(at, x, torch::full(shape, sigma, x.options().dtype(torch::kFloat32)));
    };
  }
  return [this, network = std::move(network)](const torch::Tensor& x, double sigma, const torch::Tensor& labels) {
    const auto t = timestep_at(sigma);
    const auto x_t = x * sqrt_abar_[t];
    const auto t_batch = torch::full({x.size(0)}, t, x.options().dtype(torch::kLong));
    return x0_from_output(network(x_t, t_batch, labels).to(torch::kFloat32), x_t, t);
  };
}

torch::Tensor Diffusion::draw_levels(std::int64_t n, c10::optional<at::Generator> gen,
                                     const torch::TensorOptions& options) const {
  if (!edm()) return torch::randint(0, timesteps(), {n}, std::move(gen), options.dtype(torch::kLong));
  return (torch::randn({n}, std::move(gen), options.dtype(torch::kFloat32)) * p_std_ + p_mean_).exp();
}

torch::Tensor Diffusion::edm_denoise(const NetworkAt& network, const torch::Tensor& x, const torch::Tensor& sigma) const {
  const auto p = edm_preconditioning(sigma.to(torch::kFloat32), sigma_data_);
  const auto out = network(p.c_in * x, p.c_noise.flatten()).to(torch::kFloat32);
  return p.c_skip * x + p.c_out * out;
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

torch::Tensor Diffusion::loss(const NetworkAt& network, const torch::Tensor& x0, const torch::Tensor& t,
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

}  // namespace ddpm::model
