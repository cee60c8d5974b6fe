// The power-function EMAs of post-hoc EMA (model/power_ema.hpp) on disk: their state in a
// checkpoint (group /phema, one subgroup per average, so a run resumes them exactly), and the
// snapshots training leaves for the reconstruction, <run>/phema/snapshot_<8 digits>.h5, each
// written atomically with checksums and never pruned.
#pragma once

#include <H5Cpp.h>

#include <string>
#include <vector>

#include "io/named_tensors.hpp"

namespace ddpm::io {

// One average: its length, the updates it has seen, and its values by parameter name (views of
// the average's buffer when writing; tensors to fill, shaped as the parameters, when reading).
struct PowerEmaState {
  double sigma_rel = 0.0;
  std::int64_t updates = 0;
  Named values;
};

// Writes /<name>/<k> for each average (attributes sigma_rel, updates).
void write_power_emas(H5::Group& root, const std::string& name, const std::vector<PowerEmaState>& emas);
// What read_power_emas read and verified, not yet assigned: per average its update count and its
// values (per parameter, in order).
struct PowerEmasRead {
  std::vector<std::int64_t> updates;
  std::vector<std::vector<torch::Tensor>> values;
};
// Reads the averages that `emas` expects (their sigma_rel and shapes), verified, nothing assigned.
// Throws ddpm::Error naming `path` when the file holds other averages than these.
PowerEmasRead read_power_emas(const std::string& path, const H5::Group& root, const std::string& name,
                              const std::vector<PowerEmaState>& emas);
void assign_power_emas(std::vector<PowerEmaState>& emas, const PowerEmasRead& read);

std::string power_ema_snapshot_path(const std::string& run_dir, std::int64_t step);
void write_power_ema_snapshot(const std::string& path, std::int64_t step, const std::vector<PowerEmaState>& emas,
                              const std::string& config_yaml);

// A snapshot file's averages, read whole and verified (their values by parameter name).
struct PowerEmaSnapshot {
  std::string path;
  std::int64_t step = 0;
  std::vector<PowerEmaState> emas;
};
// Every snapshot of <run_dir>/phema up to `last_step` (all when negative), oldest first; `like`
// gives the parameter names and shapes. A damaged file stops with its name.
std::vector<PowerEmaSnapshot> read_power_ema_snapshots(const std::string& run_dir, const Named& like,
                                                       std::int64_t last_step = -1);

}  // namespace ddpm::io
