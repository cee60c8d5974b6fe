// Checkpoint files: results/<run>/checkpoints/step_<8 digits>.h5, everything a run needs to
// continue bitwise: /model/<param>, /ema/<param>, /optim/{exp_avg,exp_avg_sq}/<param> and
// /optim/step/<param>, and attributes (step, epoch, ema_updates, world_size, config, version,
// torch, created; `complete` is written last). Parameter names are the module's own dotted names;
// a file of another architecture is refused with the names and shapes that differ.
#pragma once

#include <torch/torch.h>

#include <optional>
#include <string>

namespace ddpm::io {

struct CheckpointInfo {
  std::int64_t step = 0;
  std::int64_t epoch = 0;
  std::int64_t ema_updates = 0;
  std::int64_t world_size = 1;
  std::string config_yaml;
};

std::string checkpoint_path(const std::string& run_dir, std::int64_t step);

// `optimizer` may be null (weights only).
void write_checkpoint(const std::string& path, torch::nn::Module& model, torch::nn::Module& ema,
                      const torch::optim::Adam* optimizer, const CheckpointInfo& info);

// Loads `path` into `model`, `ema` and (when given) `optimizer` after checking every name and shape.
CheckpointInfo read_checkpoint(const std::string& path, torch::nn::Module& model, torch::nn::Module& ema,
                               torch::optim::Adam* optimizer = nullptr);

// The newest checkpoint in <run_dir>/checkpoints that opens and is complete; `skipped` receives
// the newer files that did not, each with the reason.
std::optional<std::string> latest_checkpoint(const std::string& run_dir, std::vector<std::string>* skipped = nullptr);

// Removes all but the newest `keep` checkpoints.
void prune_checkpoints(const std::string& run_dir, int keep);
// Removes temporary files that a killed writer left (checkpoints, run.h5); returns their names.
std::vector<std::string> remove_stale_temporaries(const std::string& run_dir);

}  // namespace ddpm::io
