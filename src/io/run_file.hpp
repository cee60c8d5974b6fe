// results/<run>/run.h5: the run's configuration, metric histories and samples (and, later,
// evaluation results). Every change rewrites the file atomically (copy, change, fsync, rename), so
// a reader can open it at any time during training and a crash leaves the previous version.
#pragma once

#include <torch/types.h>

#include <string>
#include <vector>

namespace ddpm::io {

struct MetricsRow {
  double step = 0, loss = 0, lr = 0, grad_norm = 0, img_per_s = 0, wall_s = 0;
};

struct SampleAttrs {
  std::string sampler;
  std::int64_t steps = 0;
  double eta = 0;
  bool ema = true;
  std::int64_t checkpoint_step = 0;
  std::uint64_t seed = 0;
};

std::string run_file_path(const std::string& run_dir);

// /config with attributes yaml, created, version, torch, world_size.
void write_run_config(const std::string& path, const std::string& yaml, int world_size);
void append_train_metrics(const std::string& path, const std::vector<MetricsRow>& rows);
std::vector<MetricsRow> read_train_metrics(const std::string& path);
// Drops the rows after `step`, so that a resumed run continues the history without duplicates.
void truncate_train_metrics(const std::string& path, std::int64_t step);
// /samples/images uint8 [N, H, W] with its settings as attributes.
void write_samples(const std::string& path, const torch::Tensor& images_u8, const SampleAttrs& attrs);

}  // namespace ddpm::io
