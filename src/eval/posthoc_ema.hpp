// Post-hoc EMA (model/power_ema.hpp) for evaluation: the weights of a power-function EMA of any
// length, reconstructed from the snapshots a run left in <run>/phema (train.phema_sigma_rels).
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "io/power_emas.hpp"

namespace ddpm::eval {

struct PosthocEma {
  double sigma_rel = 0.0;
  std::int64_t step = 0;       // the newest snapshot used: the reconstruction is the average there
  std::int64_t updates = 0;    // the updates its averages had seen
  int snapshots = 0;           // files read
  int averages = 0;            // averages combined (files x lengths)
  double residual = 0.0;       // sum |r| of the profile left (model::posthoc_coefficients)
  std::string describe() const;
};

// A run's snapshots, read once (a sweep reconstructs many lengths and steps from them).
class PosthocEmaSource {
 public:
  // Every snapshot of <run_dir>/phema up to `last_step` (all when negative); `like` gives the
  // parameter names and shapes. io::DamagedFile for a damaged snapshot.
  PosthocEmaSource(std::string run_dir, torch::nn::Module& like, std::int64_t last_step = -1);
  // Into `net`'s parameters (its buffers are left): the average of length `sigma_rel` at the newest
  // snapshot up to `step` (the newest read when negative). Throws ddpm::Error naming the folder when
  // there is none.
  PosthocEma reconstruct(double sigma_rel, std::int64_t step, torch::nn::Module& net) const;
  bool empty() const { return snapshots_.empty(); }

 private:
  std::string run_dir_;
  std::vector<io::PowerEmaSnapshot> snapshots_;
};

// PosthocEmaSource(run_dir, net, step).reconstruct(sigma_rel, step, net).
PosthocEma load_posthoc_ema(const std::string& run_dir, double sigma_rel, std::int64_t step, torch::nn::Module& net);

}  // namespace ddpm::eval
