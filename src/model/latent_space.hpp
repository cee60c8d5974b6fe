// Latent diffusion's spaces. The diffusion model works on standardised latents,
// (z - mean) / std with the moments of the autoencoder's posterior draws over the training set, so
// that its forward process meets data of unit variance as it does images; samples are
// unstandardised and decoded. A wrong scale is the classic failure of latent diffusion (good
// reconstructions, samples that decode to noise): the scale lives with the latent cache that
// measured it (io/latent_cache.hpp) and is checked against the cache's own contents.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "model/autoencoder.hpp"

namespace ddpm::model {

struct LatentScale {
  double mean = 0.0, std = 1.0;
  torch::Tensor standardise(const torch::Tensor& z) const { return (z - mean) / std; }
  torch::Tensor unstandardise(const torch::Tensor& x) const { return x * std + mean; }
};

// What samples are drawn in and how they become images: the images themselves, or the standardised
// latents of an autoencoder (in evaluation mode, on the samples' device).
class SampleSpace {
 public:
  explicit SampleSpace(std::vector<std::int64_t> image_shape);
  SampleSpace(Autoencoder autoencoder, LatentScale scale);
  // [C, H, W] of a sample
  const std::vector<std::int64_t>& shape() const { return shape_; }
  bool latent() const { return !ae_.is_empty(); }
  const LatentScale& scale() const { return scale_; }
  // Samples [B, shape] -> float images in [-1, 1], on the samples' device: clamped pixels, or the
  // unstandardised latents decoded in batches of `batch`.
  torch::Tensor to_images(const torch::Tensor& x, std::int64_t batch = 500) const;
  // Images in [-1, 1] -> the samples that stand for them: the images, or their posterior means
  // standardised. With to_images, the autoencoder's reconstruction.
  torch::Tensor from_images(const torch::Tensor& images, std::int64_t batch = 500) const;
  // Network FLOPs per image of to_images (0 for pixels).
  double decode_flops() const;

 private:
  std::vector<std::int64_t> shape_;
  mutable Autoencoder ae_{nullptr};  // decoding changes no state, but torch's forward is not const
  LatentScale scale_;
};

}  // namespace ddpm::model
