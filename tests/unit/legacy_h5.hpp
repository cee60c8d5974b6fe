// A checkpoint written as ddpm_dist wrote them before files carried checksums: HDF5's earliest
// format (no metadata checksums) and contiguous datasets (no Fletcher32). For the tests that such
// files still load, and for the benchmark of what checksums cost.
#pragma once

#include <H5Cpp.h>
#include <torch/torch.h>

#include <string>

#include "io/checkpoint.hpp"
#include "io/h5.hpp"
#include "io/named_tensors.hpp"

inline void write_legacy_group(H5::Group& parent, const std::string& name, const ddpm::io::Named& tensors) {
  auto group = parent.createGroup(name);
  for (const auto& [key, t] : tensors) {
    auto c = t.detach().cpu().contiguous();
    std::vector<hsize_t> dims(c.sizes().begin(), c.sizes().end());
    H5::DataSpace space(static_cast<int>(dims.size()), dims.empty() ? nullptr : dims.data());
    const auto& type = c.scalar_type() == torch::kInt64 ? H5::PredType::NATIVE_INT64 : H5::PredType::NATIVE_FLOAT;
    group.createDataSet(key, type, space).write(c.data_ptr(), type);
  }
}

// Model and EMA (no optimizer state), as `sample` and `eval` read them.
inline void fill_legacy_checkpoint(H5::H5File& file, torch::nn::Module& model, torch::nn::Module& ema,
                                   const ddpm::io::CheckpointInfo& info) {
  auto root = file.openGroup("/");
  write_legacy_group(root, "model", ddpm::io::named_tensors(model));
  write_legacy_group(root, "ema", ddpm::io::named_tensors(ema));
  ddpm::io::write_attr(root, "step", info.step);
  ddpm::io::write_attr(root, "epoch", info.epoch);
  ddpm::io::write_attr(root, "ema_updates", info.ema_updates);
  ddpm::io::write_attr(root, "world_size", info.world_size);
  ddpm::io::write_attr(root, "config", info.config_yaml);
  ddpm::io::write_attr(root, "complete", std::int64_t{1});
}

inline void write_legacy_checkpoint(const std::string& path, torch::nn::Module& model, torch::nn::Module& ema,
                                    const ddpm::io::CheckpointInfo& info) {
  H5::H5File file(path, H5F_ACC_TRUNC);
  fill_legacy_checkpoint(file, model, ema, info);
}
