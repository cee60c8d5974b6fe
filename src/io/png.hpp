// Grayscale PNG output through libpng.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <string>

namespace ddpm::io {

// Pictures for a person: each digit enlarged kPictureScale times (nearest neighbour), so that a
// stroke can be judged on a laptop screen, with a one-pixel grey line between digits (a black one
// vanishes against their black background). The data in run.h5 stays at 28 pixels.
constexpr int kPictureScale = 3;
constexpr std::uint8_t kBorderGrey = 96;

// Tiles uint8 images [N, H, W] into a grid of `columns` columns, each image enlarged `scale` times
// (nearest neighbour), with `pad` grey pixels around and between them.
torch::Tensor make_grid(const torch::Tensor& images_u8, int columns, int scale = kPictureScale, int pad = 1);
// Writes a uint8 [H, W] image as an 8-bit grayscale PNG (atomically: temporary name, then rename).
void write_png(const std::string& path, const torch::Tensor& image_u8);

}  // namespace ddpm::io
