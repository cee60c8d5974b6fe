// MNIST-format data set (MNIST or Fashion-MNIST) held in memory as uint8.
#pragma once

#include <torch/types.h>

#include <string>

namespace ddpm::data {

enum class Split { Train, Test };

struct Dataset {
  torch::Tensor images;  // uint8 [N, 28, 28]
  torch::Tensor labels;  // uint8 [N]
  std::int64_t size() const { return images.size(0); }
};

// Loads {train,t10k}-{images-idx3,labels-idx1}-ubyte from `dir` and checks that images and labels
// agree in count. `dataset` is "mnist" or "fashion_mnist" (same format, other folder).
Dataset load_dataset(const std::string& dir, Split split);

// uint8 [B, H, W] -> float [B, 1, H, W] in [-1, 1].
torch::Tensor to_model_range(const torch::Tensor& images_u8);
// float [B, 1, H, W] in [-1, 1] -> uint8 [B, H, W], rounded and clamped.
torch::Tensor to_uint8(const torch::Tensor& images);

}  // namespace ddpm::data
