// The picture of a set of samples (samples.png).
#pragma once

#include <torch/types.h>

namespace ddpm::eval {

// The first 100 images in rows of 10; when `labels` (the class each image was asked for) names
// several classes, one row per class instead, in class order, holding that class's first 10 images
// (black where a class has fewer). Returns uint8 [H, W].
torch::Tensor sample_grid(const torch::Tensor& images_u8, const torch::Tensor& labels);

}  // namespace ddpm::eval
