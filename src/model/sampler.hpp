// Reverse-process sampling (ancestral DDPM, DDIM, Heun, DPM-Solver++ 2M) for a block of images identified by their
// global sample indices. Image i's noise comes only from (seed, i / cfg.batch_size, draw) and its
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
// Called with the starting noise (t = T) and after each reverse step with (timestep reached, x):
// the timestep is that of the new x_t, or -1 for the final image. For the reverse-process picture.
using StateCallback = std::function<void(std::int64_t t, const torch::Tensor& x)>;

// Trained timesteps whose noise levels sigma_t = sqrt((1 - abar_t) / abar_t) follow EDM's schedule
// (sigma_max^(1/rho) -> sigma_min^(1/rho) in `levels` even steps, to the power rho), each rounded to
// the nearest timestep in log sigma; descending, without repeats (so possibly fewer than `levels`).
std::vector<std::int64_t> karras_timesteps(const Diffusion& diffusion, int levels, double rho);
// Noise levels of the heun sampler for a budget of `steps` network evaluations: 2 levels - 1 <= steps.
int heun_levels(int steps);
// Network evaluations per image of the sample section: ddpm T, ddim and dpmpp_2m sample.steps,
// heun 2 x heun_levels - 1 (one evaluation per level and a correction on all but the last).
int network_evaluations(const config::SampleConfig& cfg, int T);

// Returns float [count, C, H, W] (in [-1, 1] with request.clamp), on the CPU. Samplers: ddpm (ancestral, all T steps), ddim
// (sample.steps respaced, eta), heun and dpmpp_2m (deterministic, on karras_timesteps). `network`
// outputs what diffusion.prediction names; each batch's labels are bound to it.
torch::Tensor sample_images(const Network& network, const Diffusion& diffusion, const config::SampleConfig& cfg,
                           const std::vector<std::int64_t>& image_shape, const SampleRequest& request,
                           const torch::Device& device, const StepCallback& on_step = nullptr,
                           const StateCallback& on_state = nullptr);

}  // namespace ddpm::model
