#include "model/sampler.hpp"

#include <algorithm>

#include "util/rng.hpp"

namespace ddpm::model {
namespace {

// The noise of global image batch k (images [k batch, (k + 1) batch)): draw d (0: the starting
// noise, then one per step that adds noise) covers the whole batch, from a generator seeded by
// (seed, k, d), and a chunk takes its rows. An image's noise then depends on neither the number of
// ranks nor the range requested, and on a GPU a draw is made on the device (draw_seeded).
class BatchNoise {
 public:
  BatchNoise(std::uint64_t seed, std::int64_t batch, const std::vector<std::int64_t>& image_shape,
             const torch::Device& device)
      : seed_(seed), batch_(batch), device_(device), shape_{batch} {
    shape_.insert(shape_.end(), image_shape.begin(), image_shape.end());
  }
  // Draw `index` of global images [first, first + n), which lie in one batch.
  torch::Tensor draw(std::int64_t first, std::int64_t n, std::int64_t index) const {
    const std::int64_t k = first / batch_, row = first - k * batch_;
    const auto derived = derive_seed({seed_, static_cast<std::uint64_t>(Stream::SampleNoise),
                                      static_cast<std::uint64_t>(k), static_cast<std::uint64_t>(index)});
    return draw_seeded(derived, device_, [&](c10::optional<at::Generator> gen, const torch::TensorOptions& opts) {
      return torch::randn(shape_, std::move(gen), opts.dtype(torch::kFloat32)).slice(0, row, row + n);
    });
  }

 private:
  std::uint64_t seed_;
  std::int64_t batch_;
  torch::Device device_;
  std::vector<std::int64_t> shape_;
};

// Heun (EDM's Algorithm 1, deterministic) and DPM-Solver++(2M) (Lu et al. 2022) on x = x_t /
// sqrt(abar_t), whose noise level is sigma_t, over trained timesteps on a Karras (rho = 7) sigma
// schedule, ending at sigma = 0. D(x, t) is the x0 estimate of the model at t.
torch::Tensor sample_by_sigma(const EpsModel& model, const Diffusion& diffusion, const config::SampleConfig& cfg,
                              const torch::Tensor& noise, const std::function<void(int, int)>& step_done,
                              const StateCallback& on_state) {
  const auto& s = diffusion.schedule();
  const bool heun = cfg.sampler == "heun";
  const auto ts = karras_timesteps(diffusion, heun ? heun_levels(cfg.steps) : cfg.steps, 7.0);
  const int levels = static_cast<int>(ts.size());
  const auto n = noise.size(0);
  auto denoise = [&](const torch::Tensor& x, std::int64_t t) {
    const auto x_t = x * std::sqrt(s.abar[t]);
    const auto t_batch = torch::full({n}, t, torch::TensorOptions().dtype(torch::kLong).device(x.device()));
    const auto x0 = diffusion.predict_x0(x_t, t_batch, model(x_t, t_batch).to(torch::kFloat32));
    return cfg.clip_x0 ? x0.clamp(-1.0, 1.0) : x0;
  };
  // The starting noise is x_t at the largest trained t (as for ddpm and ddim): x = x_t / sqrt(abar).
  auto x = noise * (1.0 / std::sqrt(s.abar[ts[0]]));
  torch::Tensor previous;  // DPM-Solver++: the last denoised estimate
  double previous_h = 0.0;
  for (int i = 0; i < levels; ++i) {
    const double sigma = diffusion.sigma(ts[i]);
    const bool last = i + 1 == levels;
    const double next = last ? 0.0 : diffusion.sigma(ts[i + 1]);
    const auto d0 = denoise(x, ts[i]);
    if (last) {
      x = d0;  // sigma = 0: the denoised image
    } else if (heun) {
      const auto slope = (x - d0) / sigma;
      const auto euler = x + (next - sigma) * slope;
      const auto slope_next = (euler - denoise(euler, ts[i + 1])) / next;
      x = x + (next - sigma) * 0.5 * (slope + slope_next);
    } else {
      // In lambda = -log sigma: x' = (sigma'/sigma) x - expm1(-h) D, D extrapolated to second order.
      const double h = std::log(sigma / next);
      auto d = d0;
      if (previous.defined()) {
        const double r = previous_h / h;
        d = d0 * (1.0 + 1.0 / (2.0 * r)) - previous * (1.0 / (2.0 * r));
      }
      x = x * (next / sigma) - std::expm1(-h) * d;
      previous = d0;
      previous_h = h;
    }
    if (on_state) on_state(last ? -1 : ts[i + 1], last ? x : x * std::sqrt(s.abar[ts[i + 1]]));
    step_done(i + 1, levels);
  }
  return x;
}

}  // namespace

std::vector<std::int64_t> karras_timesteps(const Diffusion& diffusion, int levels, double rho) {
  const int T = diffusion.timesteps();
  std::vector<double> log_sigma(T);
  for (int t = 0; t < T; ++t) log_sigma[t] = std::log(diffusion.sigma(t));
  const double lo = std::pow(diffusion.sigma(0), 1.0 / rho), hi = std::pow(diffusion.sigma(T - 1), 1.0 / rho);
  std::vector<std::int64_t> ts;
  for (int i = 0; i < levels; ++i) {
    const double frac = levels == 1 ? 0.0 : double(i) / double(levels - 1);
    const double target = rho * std::log(hi + frac * (lo - hi));
    // sigma grows with t: the nearest trained timestep in log sigma.
    const auto it = std::lower_bound(log_sigma.begin(), log_sigma.end(), target);
    std::int64_t t = std::min<std::int64_t>(it - log_sigma.begin(), T - 1);
    if (t > 0 && target - log_sigma[t - 1] < log_sigma[t] - target) --t;
    if (ts.empty() || t < ts.back()) ts.push_back(t);
  }
  return ts;
}

int network_evaluations(const config::SampleConfig& cfg, int T) {
  if (cfg.sampler == "ddpm") return T;
  if (cfg.sampler == "heun") return 2 * heun_levels(cfg.steps) - 1;
  return cfg.steps;
}

int heun_levels(int steps) { return std::max(1, (steps + 1) / 2); }

torch::Tensor sample_labels(const config::LabelChoice& labels, int num_classes, std::uint64_t seed, std::int64_t first,
                            std::int64_t count) {
  if (num_classes == 0) return {};
  auto out = torch::empty({count}, torch::kLong);
  auto* v = out.data_ptr<std::int64_t>();
  for (std::int64_t k = 0; k < count; ++k) {
    const auto i = static_cast<std::uint64_t>(first + k);
    if (labels.mode == "balanced") {
      v[k] = static_cast<std::int64_t>(i % static_cast<std::uint64_t>(num_classes));
    } else if (labels.mode == "random") {
      v[k] = static_cast<std::int64_t>(derive_seed({seed, static_cast<std::uint64_t>(Stream::SampleLabels), i}) %
                                       static_cast<std::uint64_t>(num_classes));
    } else if (labels.mode == "none") {
      v[k] = num_classes;
    } else {
      v[k] = labels.classes[i % labels.classes.size()];
    }
  }
  return out;
}

torch::Tensor sample_images(const Network& network, const Diffusion& diffusion, const config::SampleConfig& cfg,
                           const std::vector<std::int64_t>& image_shape, const SampleRequest& request,
                           const torch::Device& device, const StepCallback& on_step,
                           const StateCallback& on_state) {
  c10::InferenceMode guard;
  const int T = diffusion.timesteps();
  const auto ts = cfg.sampler == "ddpm" ? respaced_timesteps(T, T) : respaced_timesteps(T, std::min(cfg.steps, T));
  const int total = static_cast<int>(ts.size());
  const bool stochastic = cfg.sampler == "ddpm" || cfg.eta > 0.0;

  std::vector<torch::Tensor> images;
  // Batches are cut at global multiples of the batch size, so an image is always computed in the
  // same batch whatever range was requested: matrix products are not bitwise independent of the
  // batch size, and this keeps the set of images exactly independent of the number of ranks.
  const std::int64_t batch = std::max<std::int64_t>(1, cfg.batch_size);
  const BatchNoise noise(request.seed, batch, image_shape, device);
  std::vector<std::pair<std::int64_t, std::int64_t>> chunks;  // [begin, n) relative to the request
  for (std::int64_t g = request.first_index; g < request.first_index + request.count;) {
    const std::int64_t end = std::min(request.first_index + request.count, (g / batch + 1) * batch);
    chunks.emplace_back(g - request.first_index, end - g);
    g = end;
  }
  const int batches = static_cast<int>(chunks.size());
  for (int c = 0; c < batches; ++c) {
    const auto [begin, n] = chunks[c];
    const auto labels = request.labels.defined() ? request.labels.slice(0, begin, begin + n).to(device) : torch::Tensor();
    const auto model = diffusion.eps_model(
        [&network, labels](const torch::Tensor& x_t, const torch::Tensor& t) { return network(x_t, t, labels); });
    const std::int64_t first = request.first_index + begin;
    auto x = noise.draw(first, n, 0);
    if (on_state) on_state(T, x);
    if (cfg.sampler == "heun" || cfg.sampler == "dpmpp_2m") {
      auto step_done = [&, c = c](int i, int steps) {
        if (on_step) on_step(c * steps + i, batches * steps);
      };
      const auto out = sample_by_sigma(model, diffusion, cfg, x, step_done, on_state);
      images.push_back((request.clamp ? out.clamp(-1.0, 1.0) : out).cpu());
      continue;
    }
    for (int i = 0; i < total; ++i) {
      const std::int64_t t = ts[i];
      const auto t_batch = torch::full({n}, t, torch::TensorOptions().dtype(torch::kLong).device(device));
      auto eps = model(x, t_batch).to(torch::kFloat32);
      const bool last = i + 1 == total;
      auto z = stochastic && !last ? noise.draw(first, n, i + 1) : torch::Tensor();
      if (cfg.sampler == "ddpm") {
        x = diffusion.ddpm_step(x, t, eps, z, cfg.variance == "posterior", cfg.clip_x0);
      } else {
        x = diffusion.ddim_step(x, t, last ? -1 : ts[i + 1], eps, z, cfg.eta, cfg.clip_x0);
      }
      if (on_state) on_state(last ? -1 : ts[i + 1], x);
      if (on_step) on_step(c * total + i + 1, batches * total);
    }
    images.push_back((request.clamp ? x.clamp(-1.0, 1.0) : x).cpu());
  }
  return torch::cat(images);
}

}  // namespace ddpm::model
