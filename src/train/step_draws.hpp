// The random draws of a training step. They are made for the whole global batch from (run.seed,
// step) alone and then cut to a rank's rows, so that no draw depends on the number of ranks or on
// how the batch is split between them (train::BatchBalancer moves the split).
#pragma once

#include <torch/torch.h>

#include "config/config.hpp"
#include "model/diffusion.hpp"
#include "util/rng.hpp"

namespace ddpm::train {

// Runs draw(generator, options) with step `step`'s generator of `stream` (draw_seeded).
template <class Draw>
auto draw_for_step(std::uint64_t seed, Stream stream, std::int64_t step, const torch::Device& device, Draw&& draw) {
  return draw_seeded(derive_seed({seed, static_cast<std::uint64_t>(stream), static_cast<std::uint64_t>(step)}), device,
                     std::forward<Draw>(draw));
}

struct StepDraws {
  torch::Tensor t;    // noise levels (model::Diffusion::draw_levels)
  torch::Tensor eps;  // noise [rows, config::diffusion_shape]
  // Conditional models with train.label_dropout > 0: the rows trained as "no class" (bool);
  // undefined otherwise. Drawn after the noise, so the other draws are those of an unconditional run.
  torch::Tensor no_label;
};

// Rows [begin, end) of step `step`'s draws (stream TrainNoise, draw_for_step), on `device`.
StepDraws draw_step(const model::Diffusion& diffusion, const config::Config& cfg, std::int64_t step, std::int64_t begin,
                    std::int64_t end, const torch::Device& device);

}  // namespace ddpm::train
