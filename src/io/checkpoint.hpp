// Checkpoint files: results/<run>/checkpoints/step_<8 digits>.h5, everything a run needs to
// continue bitwise: /model/<param>, /ema/<param>, /optim/{exp_avg,exp_avg_sq}/<param> and
// /optim/step/<param>, /history (the run's metric histories up to the step, a second copy of
// run.h5's), and attributes (step, epoch, ema_updates, world_size, config, version,
// torch, created; `complete` is written last). Parameter names are the module's own dotted names;
// a file of another architecture is refused with the names and shapes that differ.
#pragma once

#include <torch/torch.h>

#include <optional>
#include <string>

#include "config/config.hpp"
#include "io/named_tensors.hpp"
#include "io/power_emas.hpp"
#include "io/run_file.hpp"

namespace ddpm::io {

struct CheckpointInfo {
  std::int64_t step = 0;
  std::int64_t epoch = 0;
  std::int64_t ema_updates = 0;
  std::int64_t world_size = 1;
  std::string config_yaml;
  // On read: whether the file carries checksums (files written before they were added do not).
  bool checksummed = true;
};

// Adam's state as a checkpoint holds it: per parameter (the model's names) the two moments, and
// the number of steps taken, the same for all (stored per parameter, as torch::optim::Adam keeps
// it, so that files stay readable both ways). Reading fills the tensors in place.
struct AdamState {
  Named exp_avg, exp_avg_sq;
  std::int64_t steps = 0;
};

struct FoundCheckpoint {
  std::string path;
  CheckpointInfo info;
};

std::string checkpoint_path(const std::string& run_dir, std::int64_t step);

// `adam` may be null (weights only); `power_emas` (post-hoc EMA's averages, /phema) too, and
// `history` (the run's histories up to this step, /history: io::read_checkpoint_history).
void write_checkpoint(const std::string& path, torch::nn::Module& model, torch::nn::Module& ema, const AdamState* adam,
                      const CheckpointInfo& info, const std::vector<PowerEmaState>* power_emas = nullptr,
                      const RunHistory* history = nullptr);

// Loads `path` into `model`, `ema` and (when given) `adam` after checking every name and shape
// and verifying every checksum. All or nothing: a file that fails (DamagedFile for damage or an
// incomplete file, Error for another architecture) leaves the modules and the optimizer unchanged.
// With `expected` (the configuration the modules were built from), a file whose stored
// configuration differs from it in a key for which `defining` holds (empty: the model.* keys;
// config::defines_diffusion and its siblings are the project's rules) is refused with each such
// key, both values and the --set that reads the file as it was trained. With `power_emas`, the file
// must hold exactly those averages (io::read_power_emas), which are read with the rest.
CheckpointInfo read_checkpoint(const std::string& path, torch::nn::Module& model, torch::nn::Module& ema,
                               AdamState* adam = nullptr, const config::Config* expected = nullptr,
                               const config::KeyFilter& defining = {}, std::vector<PowerEmaState>* power_emas = nullptr);

// The resolved configuration a checkpoint was trained with (its `config` attribute), read alone, to
// build the network it holds before reading it (an autoguidance guide from another run). Throws
// DamagedFile for a file without one.
std::string read_checkpoint_config(const std::string& path);
// `--resume auto`: loads the newest checkpoint of `run_dir` that verifies, trying older ones past
// each damaged or incomplete file; `skipped` receives those, each with the reason. Nothing when
// none verifies. Errors other than damage (another architecture) stop the search.
std::optional<FoundCheckpoint> read_newest_checkpoint(const std::string& run_dir, torch::nn::Module& model,
                                                      torch::nn::Module& ema, AdamState* adam,
                                                      std::vector<std::string>* skipped = nullptr,
                                                      const config::Config* expected = nullptr,
                                                      const config::KeyFilter& defining = {},
                                                      std::vector<PowerEmaState>* power_emas = nullptr);

// The newest checkpoint in <run_dir>/checkpoints that opens and is complete (its data is verified
// when it is read); `skipped` receives the newer files that did not, each with the reason.
std::optional<std::string> latest_checkpoint(const std::string& run_dir, std::vector<std::string>* skipped = nullptr);

// The steps of the checkpoint files in <run_dir>/checkpoints, oldest first (complete or not).
std::vector<std::int64_t> checkpoint_steps(const std::string& run_dir);
// Removes all but the newest `keep` checkpoints.
void prune_checkpoints(const std::string& run_dir, int keep);
// Removes temporary files that a killed writer left (checkpoints, run.h5); returns their names.
std::vector<std::string> remove_stale_temporaries(const std::string& run_dir);

}  // namespace ddpm::io
