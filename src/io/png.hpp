// Grayscale PNG output through libpng.
#pragma once

#include <torch/types.h>

#include <string>

namespace ddpm::io {

// Tiles uint8 images [N, H, W] into a grid of `columns` columns with a `pad`-pixel black border.
torch::Tensor make_grid(const torch::Tensor& images_u8, int columns, int pad = 2);
// Writes a uint8 [H, W] image as an 8-bit grayscale PNG (atomically: temporary name, then rename).
void write_png(const std::string& path, const torch::Tensor& image_u8);

}  // namespace ddpm::io
