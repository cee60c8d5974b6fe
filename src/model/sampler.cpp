#include "model/sampler.hpp"

#include <algorithm>
#include <cmath>

#include "util/rng.hpp"

namespace ddpm::model {
namespace {

// The noise of global image batch k (images [k batch, (k + 1) batch)): draw d (0: the starting
// noise, then one per step that adds noise) covers the whole batch, from a generator seeded by
// Stream(seed, SampleNoise) at (k, d), and a chunk takes its rows. An image's noise then depends on neither the number of
// ranks nor the range requested, and on a GPU a draw is made on the device (Stream::draw).
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
    const Stream stream(seed_, Purpose::SampleNoise);
    return stream.draw({static_cast<std::uint64_t>(k), static_cast<std::uint64_t>(index)}, device_,
                       [&](c10::optional<at::Generator> gen, const torch::TensorOptions& opts) {
      return torch::randn(shape_, std::move(gen), opts.dtype(torch::kFloat32)).slice(0, row, row + n);
    });
  }

 private:
  std::uint64_t seed_;
  std::int64_t batch_;
  torch::Device device_;
  std::vector<std::int64_t> shape_;
};

}  // namespace

std::vector<double> karras_sigmas(const Diffusion& diffusion, int levels, double rho) {
  const double lo = std::pow(diffusion.sigma(0), 1.0 / rho);
  const double hi = std::pow(diffusion.sigma(diffusion.timesteps() - 1), 1.0 / rho);
  std::vector<double> sigmas;
  for (int i = 0; i < levels; ++i) {
    const double frac = levels == 1 ? 0.0 : double(i) / double(levels - 1);
    sigmas.push_back(std::pow(hi + frac * (lo - hi), rho));
  }
  return sigmas;
}

int heun_levels(int steps) { return std::max(1, (steps + 1) / 2); }

std::vector<double> sampling_levels(const Diffusion& diffusion, const config::SampleConfig& cfg) {
  const int T = diffusion.timesteps();
  std::vector<double> sigmas;
  if (cfg.sampler == "ddpm" || cfg.sampler == "ddim") {
    for (const auto t : respaced_timesteps(T, cfg.sampler == "ddpm" ? T : std::min(cfg.steps, T)))
      sigmas.push_back(diffusion.sigma(t));
    return sigmas;
  }
  const auto karras = karras_sigmas(diffusion, cfg.sampler == "heun" ? heun_levels(cfg.steps) : cfg.steps, 7.0);
  if (diffusion.edm()) return karras;
  for (const double sigma : karras) {
    const double trained = diffusion.sigma(diffusion.timestep_at(sigma));
    if (sigmas.empty() || trained < sigmas.back()) sigmas.push_back(trained);
  }
  return sigmas;
}

int network_evaluations(const config::SampleConfig& cfg, const config::DiffusionConfig& diffusion) {
  const int levels = static_cast<int>(sampling_levels(Diffusion(diffusion), cfg).size());
  return cfg.sampler == "heun" ? 2 * levels - 1 : levels;
}

torch::Tensor ancestral_step(const torch::Tensor& x, const torch::Tensor& x0, double sigma, double next, double eta,
                             bool beta_variance, const torch::Tensor& z) {
  if (next <= 0.0) return x0;
  const double s2 = sigma * sigma, n2 = next * next;
  const double up = eta * std::sqrt(n2 * (s2 - n2) / s2);
  auto out = x0 + (x - x0) * (std::sqrt(std::max(n2 - up * up, 0.0)) / sigma);
  const double noise = beta_variance ? std::sqrt((s2 - n2) * (1.0 + n2) / (1.0 + s2)) : up;
  if (noise > 0.0) out = out + z * noise;
  return out;
}

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
      v[k] = static_cast<std::int64_t>(Stream(seed, Purpose::SampleLabels).key({i}) %
                                       static_cast<std::uint64_t>(num_classes));
    } else if (labels.mode == "none") {
      v[k] = num_classes;
    } else {
      v[k] = labels.classes[i % labels.classes.size()];
    }
  }
  return out;
}

torch::Tensor sample_images(const Denoiser& denoise, const Diffusion& diffusion, const config::SampleConfig& cfg,
                            const std::vector<std::int64_t>& image_shape, const SampleRequest& request,
                            const torch::Device& device, const StepCallback& on_step,
                            const StateCallback& on_state) {
  c10::InferenceMode guard;
  const auto sigmas = sampling_levels(diffusion, cfg);
  const int levels = static_cast<int>(sigmas.size());
  const bool ancestral = cfg.sampler == "ddpm" || cfg.sampler == "ddim";
  const double eta = cfg.sampler == "ddpm" ? 1.0 : cfg.eta;
  const bool beta_variance = cfg.sampler == "ddpm" && cfg.variance == "beta";
  const bool stochastic = ancestral && eta > 0.0;

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
    const auto D = [&](const torch::Tensor& x, double sigma) {
      const auto x0 = denoise(x, sigma, labels);
      return cfg.clip_x0 ? x0.clamp(-1.0, 1.0) : x0;
    };
    const std::int64_t first = request.first_index + begin;
    // The starting noise is x_t at the largest level: x = x_t / sqrt(abar) = x_t sqrt(1 + sigma^2).
    const auto start = noise.draw(first, n, 0);
    if (on_state) on_state(diffusion.timesteps(), start);
    auto x = start * std::sqrt(1.0 + sigmas[0] * sigmas[0]);
    torch::Tensor previous;  // DPM-Solver++: the last denoised estimate
    double previous_h = 0.0;
    for (int i = 0; i < levels; ++i) {
      const double sigma = sigmas[i];
      const bool last = i + 1 == levels;
      const double next = last ? 0.0 : sigmas[i + 1];
      const auto d0 = D(x, sigma);
      if (last) {
        x = d0;  // sigma = 0: the denoised image
      } else if (ancestral) {
        x = ancestral_step(x, d0, sigma, next, eta, beta_variance,
                           stochastic ? noise.draw(first, n, i + 1) : torch::Tensor());
      } else if (cfg.sampler == "heun") {
        // EDM's Algorithm 1 (deterministic): Euler, then the trapezoid with the slope at next.
        const auto slope = (x - d0) / sigma;
        const auto euler = x + (next - sigma) * slope;
        const auto slope_next = (euler - D(euler, next)) / next;
        x = x + (next - sigma) * 0.5 * (slope + slope_next);
      } else {
        // DPM-Solver++(2M) (Lu et al. 2022) in lambda = -log sigma: x' = (next / sigma) x - expm1(-h) D,
        // D extrapolated to second order from the previous level's.
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
      if (on_state) on_state(last ? -1 : diffusion.timestep_at(next), x * (1.0 / std::sqrt(1.0 + next * next)));
      if (on_step) on_step(c * levels + i + 1, batches * levels);
    }
    images.push_back((request.clamp ? x.clamp(-1.0, 1.0) : x).cpu());
  }
  return torch::cat(images);
}

}  // namespace ddpm::model
