// `ddpm_dist sweep`: quality for free after training. Measures a grid of sampling settings on a
// trained run, with no retraining: the model's EMA length (post-hoc EMA), the guide (autoguidance:
// this run at an earlier step or another run, with its own EMA length; or classifier-free) and the
// guidance weight, each cell sampled across the ranks and measured with the evaluation's figures
// and their standard errors. It names the best by sweep.metric and every cell it cannot tell apart.
#pragma once

#include <string>
#include <vector>

#include "config/config.hpp"
#include "dist/communicator.hpp"
#include "eval/classifier_training.hpp"
#include "io/run_file.hpp"

namespace ddpm::eval {

struct SweepSetting {
  double ema_sigma_rel = 0;        // 0: the checkpoint's EMA
  std::int64_t guide_step = 0;     // as sample.guide_step
  double guide_ema_sigma_rel = 0;  // as sample.guide_ema_sigma_rel
  double guidance = 0;
  bool autoguided = false;         // false with guidance > 0: classifier-free
};

// The cells of cfg.sweep for cfg's model, EMA length by EMA length: the weight 0 once (the model
// alone, when listed), then every weight > 0 with every guide the lists make: a guide model for each
// (guide step, guide EMA length), and a step of 0 without sample.guide_run standing for
// classifier-free guidance, which only a conditional model trained with label dropout has (left out
// for others).
std::vector<SweepSetting> sweep_grid(const config::Config& cfg);

// Names the best row (the lowest `metric`, among the rows at least `min_cond_accuracy` accurate when
// any is) and gives every row its difference from it with the
// standard error of that difference, marking those within two. KID pairs the rows' blocks (the
// cells share their noise: same seeds, same indices, so most of the noise cancels in a
// difference); FID takes the two errors as independent, which overstates the error of a difference
// (the cautious side).
void mark_best(io::SweepTable& table);

// Runs the grid on the run's newest checkpoint; rank 0 writes /sweep into run.h5 and
// <run>/sweep.txt, and returns the table (the other ranks' rows are empty).
io::SweepTable run_sweep(dist::Communicator& comm, const config::Config& cfg, const torch::Device& device,
                         const TrainClassifier& train_classifier);

// The table as printed and written to sweep.txt, with the best row and the --set that selects it.
std::string sweep_text(const io::SweepTable& table, bool conditional);

}  // namespace ddpm::eval
