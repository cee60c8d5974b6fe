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
