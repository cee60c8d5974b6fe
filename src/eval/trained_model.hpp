// The raw and EMA U-Nets of a run's newest complete checkpoint, ready for sampling.
#pragma once

#include <string>

#include "config/config.hpp"
#include "io/checkpoint.hpp"
#include "model/unet.hpp"

namespace ddpm::eval {

struct TrainedModel {
  model::UNet live{nullptr}, ema{nullptr};
  io::CheckpointInfo info;
  std::string path;
};

// Throws ddpm::Error naming the folder and the command to run when there is no checkpoint.
TrainedModel load_trained(const config::Config& cfg, const torch::Device& device);

}  // namespace ddpm::eval
