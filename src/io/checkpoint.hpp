// Checkpoint files: results/<run>/checkpoints/step_<8 digits>.h5 holding /model/<param>,
// /ema/<param> and attributes (step, config yaml, version, complete). Parameter names are the
// module's own dotted names; a file of another architecture is refused with what differs.
#pragma once

#include <torch/torch.h>

#include <optional>
#include <string>

namespace ddpm::io {

struct CheckpointInfo {
  std::int64_t step = 0;
  std::string config_yaml;
};

std::string checkpoint_path(const std::string& run_dir, std::int64_t step);

void write_checkpoint(const std::string& path, torch::nn::Module& model, torch::nn::Module& ema,
                      const CheckpointInfo& info);

// Loads `path` into `model` and `ema` after checking every name and shape.
CheckpointInfo read_checkpoint(const std::string& path, torch::nn::Module& model, torch::nn::Module& ema);

// The newest complete checkpoint in <run_dir>/checkpoints, if any.
std::optional<std::string> latest_checkpoint(const std::string& run_dir);

}  // namespace ddpm::io
