// A U-Net small enough for unit tests that still has every kind of block: two levels, attention
// at 14x14, middle attention.
#pragma once

#include "config/config.hpp"

inline ddpm::config::ModelConfig tiny_model() {
  ddpm::config::ModelConfig m;
  m.base_channels = 8;
  m.channel_mult = {1, 2};
  m.num_res_blocks = 1;
  m.attention_resolutions = {14};
  m.groups = 4;
  m.dropout = 0.0;
  return m;
}

// An autoencoder for unit tests: three levels (28 -> 7), one block each, 4 latent channels.
inline ddpm::config::AutoencoderConfig small_autoencoder(int base_channels = 16) {
  ddpm::config::AutoencoderConfig a;
  a.base_channels = base_channels;
  a.channel_mult = {1, 2, 2};
  a.num_res_blocks = 1;
  a.latent_channels = 4;
  a.groups = 4;
  return a;
}
