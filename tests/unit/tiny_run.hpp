// The tiny U-Net's training run on MNIST, for the unit tests that drive train::Trainer.
#pragma once

#include <string>

#include "config/config.hpp"
#include "data/mnist.hpp"

inline ddpm::config::Config tiny_config(const std::string& out_dir) {
  return ddpm::config::parse(
      "run: {name: tiny, seed: 5, out_dir: " + out_dir +
          "}\n"
          "model: {base_channels: 8, channel_mult: [1, 2], num_res_blocks: 1, attention_resolutions: [14], "
          "groups: 4, dropout: 0.0}\n"
          "train: {steps: 200, batch_size: 32, lr: 2.0e-3, warmup_steps: 10, log_every: 100, checkpoint_every: 1000}\n"
          "sample: {sampler: ddim, steps: 5, eta: 1.0, batch_size: 4}\n",
      "tiny");
}

inline const ddpm::data::Dataset& mnist() {
  static const ddpm::data::Dataset d =
      ddpm::data::load_dataset(std::string(DDPM_SOURCE_DIR) + "/data/mnist", ddpm::data::Split::Train);
  return d;
}
