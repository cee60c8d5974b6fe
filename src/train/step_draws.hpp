// The random draws of a training step. They are made for the whole global batch from (run.seed,
// step) alone and then cut to a rank's rows, so that no draw depends on the number of ranks or on
// how the batch is split between them (train::BatchBalancer moves the split).
#pragma once

#include <torch/torch.h>

#include "config/config.hpp"
#include "model/diffusion.hpp"
#include "util/rng.hpp"

namespace ddpm::train {

struct StepDraws {
  torch::Tensor t;    // noise levels (model::Diffusion::draw_levels)
  torch::Tensor eps;  // noise [rows, config::diffusion_shape]
  // Conditional models with train.label_dropout > 0: the rows trained as "no class" (bool);
  // undefined otherwise. Drawn after the noise, so the other draws are those of an unconditional run.
  torch::Tensor no_label;
};

// Rows [begin, end) of step `step`'s draws (Stream(run.seed, TrainNoise) at index step), on `device`.
StepDraws draw_step(const model::Diffusion& diffusion, const config::Config& cfg, std::int64_t step, std::int64_t begin,
                    std::int64_t end, const torch::Device& device);

}  // namespace ddpm::train
