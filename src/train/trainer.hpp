// The training loop: Adam with linear warm-up, gradient clipping, EMA, progress logging and
// checkpoints. Each step's global batch (examples, timesteps, noise) is a function of
// (seed, step) alone; this rank computes only its slice of it.
#pragma once

#include <torch/torch.h>

#include <functional>

#include "config/config.hpp"
#include "data/batch_plan.hpp"
#include "data/mnist.hpp"
#include "model/diffusion.hpp"
#include "model/ema.hpp"
#include "model/unet.hpp"

namespace ddpm::train {

struct StepStats {
  double loss = 0.0;       // this rank's slice mean
  double grad_norm = 0.0;  // before clipping
  double lr = 0.0;
};

// Where a distributed run plugs in: called between backward and the optimizer step to average
// gradients, and to average scalars for the log. Defaults are single-process no-ops.
struct Collectives {
  std::function<void()> sync_gradients = [] {};
  std::function<double(double)> mean_over_ranks = [](double v) { return v; };
};

class Trainer {
 public:
  Trainer(const config::Config& cfg, const data::Dataset& train_set, torch::Device device, int rank = 0,
          int world = 1, Collectives collectives = {});

  // Trains from the current step up to cfg.train.steps, logging and checkpointing on the way.
  void run();
  // One optimizer step on this rank's slice of global step `step()`; advances step().
  StepStats train_step();

  double lr_at(std::int64_t step) const;
  std::int64_t step() const { return step_; }
  model::UNet& model() { return model_; }
  model::UNet& ema_model() { return ema_model_; }
  void write_checkpoint();

 private:
  const config::Config& cfg_;
  const data::Dataset& data_;
  torch::Device device_;
  int rank_, world_;
  Collectives coll_;
  model::Diffusion diffusion_;
  model::UNet model_{nullptr}, ema_model_{nullptr};
  std::unique_ptr<model::Ema> ema_;
  std::unique_ptr<torch::optim::Adam> optimizer_;
  data::BatchPlan plan_;
  std::int64_t step_ = 0;
};

}  // namespace ddpm::train
