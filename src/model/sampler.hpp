// Reverse-process sampling (ancestral DDPM, DDIM, Heun, DPM-Solver++ 2M), each a few lines on the
// denoiser D(x, sigma) (model/diffusion.hpp), for a block of images identified by their global
// sample indices. Image i's noise comes only from (seed, i / cfg.batch_size, draw) and its
// row in that global batch, so a set of images does not depend on how it is split into ranks or
// requests (see sample_images).
#pragma once

#include <torch/torch.h>

#include <functional>
#include <vector>

#include "config/config.hpp"
#include "model/diffusion.hpp"

namespace ddpm::model {

struct SampleRequest {
  SampleRequest(std::int64_t first, std::int64_t n, std::uint64_t s, torch::Tensor classes = {})
      : first_index(first), count(n), seed(s), labels(std::move(classes)) {}
  std::int64_t first_index;  // global index of the first image
  std::int64_t count;
  std::uint64_t seed;
  torch::Tensor labels;  // long [count]: each image's class (sample_labels); undefined: unconditional
  // Images are clamped to [-1, 1] at the end; latents (model/latent_space.hpp) are not.
  bool clamp = true;
};

// The classes that sample.labels asks for, for the images [first, first + count) of a model with
// `num_classes` classes: long [count] on the CPU, a function of (labels, seed, image index) alone;
// undefined for an unconditional model (num_classes 0).
torch::Tensor sample_labels(const config::LabelChoice& labels, int num_classes, std::uint64_t seed, std::int64_t first,
                            std::int64_t count);

// Called after each reverse step of each batch with (batch-steps done, total) for progress.
using StepCallback = std::function<void(int done, int total)>;
// Called with the starting noise (t = T) and after each reverse step with (timestep reached, x_t):
// the timestep is the one nearest the new noise level, or -1 for the final image. For the
// reverse-process picture.
using StateCallback = std::function<void(std::int64_t t, const torch::Tensor& x_t)>;

// EDM's noise levels: sigma_max^(1/rho) -> sigma_min^(1/rho) in `levels` even steps, to the power
// rho, descending, over the schedule's span sigma_0 .. sigma_{T-1}.
std::vector<double> karras_sigmas(const Diffusion& diffusion, int levels, double rho);
// The noise levels a sampler hands D, descending; after the last, it steps to sigma = 0. ddpm: every
// trained sigma_t; ddim: sample.steps of them, respaced. heun and dpmpp_2m: karras_sigmas (rho 7)
// of heun_levels(sample.steps) or sample.steps levels; an EDM model is run at them exactly, a
// discrete one at the nearest trained sigma_t, repeats dropped (so possibly fewer levels).
std::vector<double> sampling_levels(const Diffusion& diffusion, const config::SampleConfig& cfg);
// Noise levels of the heun sampler for a budget of `steps` network evaluations: 2 levels - 1 <= steps.
int heun_levels(int steps);
// Network evaluations per image that sample_images makes: one per level, and for heun a
// correction on all but the last (2 levels - 1). Guidance doubles the batch, not the count.
int network_evaluations(const config::SampleConfig& cfg, const config::DiffusionConfig& diffusion);

// One step of the ancestral family on x = x0 + sigma n, from sigma to next < sigma, with D's
// estimate x0 and eps = (x - x0) / sigma: x' = x0 + sqrt(next^2 - up^2) eps + noise z, up^2 =
// eta^2 next^2 (sigma^2 - next^2) / sigma^2. This is DDIM (Song et al. eq. 12, its sigma divided by
// sqrt(abar_next)) and, with eta = 1 between neighbouring timesteps, DDPM's posterior mean and
// variance; noise = up, except for DDPM with sigma^2 = beta_t (`beta_variance`), whose noise is
// beta_t / abar_{t-1} = (sigma^2 - next^2)(1 + next^2) / (1 + sigma^2) in these terms. next = 0: x0.
torch::Tensor ancestral_step(const torch::Tensor& x, const torch::Tensor& x0, double sigma, double next, double eta,
                             bool beta_variance, const torch::Tensor& z);

// Returns float [count, C, H, W] (in [-1, 1] with request.clamp), on the CPU, from the denoiser
// `denoise` (Diffusion::denoiser, guided or not): ddpm (ancestral), ddim (eta), heun and dpmpp_2m
// (deterministic), on sampling_levels. Each batch's labels are handed to D.
torch::Tensor sample_images(const Denoiser& denoise, const Diffusion& diffusion, const config::SampleConfig& cfg,
                            const std::vector<std::int64_t>& image_shape, const SampleRequest& request,
                            const torch::Device& device, const StepCallback& on_step = nullptr,
                            const StateCallback& on_state = nullptr);

}  // namespace ddpm::model
