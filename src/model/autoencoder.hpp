// The first stage of latent diffusion: a small KL-regularised convolutional autoencoder (Rombach et
// al. 2022, "AutoencoderKL", without the adversarial and perceptual terms). The encoder maps an
// image to a diagonal Gaussian posterior q(z | x) over a latent of latent_channels x s x s, with
// s = image_size / 2^(levels - 1); the decoder maps a latent back to an image.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "config/config.hpp"
#include "model/unet.hpp"

namespace ddpm::model {

// q(z | x) = N(mean, exp(logvar)), per latent element; [B, C, s, s] each.
struct Posterior {
  torch::Tensor mean, logvar;
  torch::Tensor std() const;
  // mean + std * noise: a draw for the given standard normal noise (of mean's shape).
  torch::Tensor sample(const torch::Tensor& noise) const;
  // KL(q || N(0, I)) per image, summed over the latent: 0.5 sum(mean^2 + var - 1 - logvar). [B]
  torch::Tensor kl() const;
};

class AutoencoderImpl : public torch::nn::Module {
 public:
  // `image_size` and `in_channels` are the data's (config::ModelConfig's); throws when the levels
  // do not divide the size.
  AutoencoderImpl(const config::AutoencoderConfig& cfg, int image_size, int in_channels);
  // x: [B, in_channels, size, size] in [-1, 1].
  Posterior encode(const torch::Tensor& x);
  // z: [B, latent_channels, s, s]; returns images in the data's range (not clamped).
  torch::Tensor decode(const torch::Tensor& z);
  // [latent_channels, s, s]
  std::vector<std::int64_t> latent_shape() const;
  std::int64_t parameter_count() const;
  // FLOPs of one image through the encoder and through the decoder, counted as UNet::forward_flops.
  double encode_flops() const;
  double decode_flops() const;

 private:
  config::AutoencoderConfig cfg_;
  int image_size_, latent_size_;
  torch::nn::Conv2d enc_in{nullptr}, enc_out{nullptr}, dec_in{nullptr}, dec_out{nullptr};
  torch::nn::GroupNorm enc_norm{nullptr}, dec_norm{nullptr};
  // Per level: its residual blocks, then (but for the last level down, the first up) a resampling conv.
  struct Level {
    std::vector<ResBlock> blocks;
    torch::nn::Conv2d resample{nullptr};
  };
  std::vector<Level> down_, up_;
  ResBlock enc_mid{nullptr}, dec_mid{nullptr};
};
TORCH_MODULE(Autoencoder);

// The training objective for images x and the posterior draw's standard normal noise:
//   (sum over pixels of (x - decode(z))^2 + kl_weight * KL(q(z | x) || N(0, I))) / pixels,
// averaged over the images. Both terms are per-image sums, so kl_weight compares them as in Rombach
// et al. (their 1e-6 means the same here); the division by the pixel count only makes the
// reconstruction term read as a per-pixel mean squared error.
struct AutoencoderLoss {
  torch::Tensor total;           // scalar, what is minimised
  torch::Tensor reconstruction;  // scalar: the per-pixel mean squared error
  torch::Tensor kl;              // scalar: KL per image (nats), averaged over the images
};
AutoencoderLoss autoencoder_loss(Autoencoder& ae, const torch::Tensor& x, const torch::Tensor& noise, double kl_weight);

// Sums over latent elements from which the latents' standard deviation follows exactly, without
// drawing: for z = mean + std * noise, E[z] = mean and E[z^2] = mean^2 + var. Sums of batches (and
// of ranks) add up.
struct LatentMoments {
  double count = 0, sum = 0, sum_sq = 0;
  LatentMoments& operator+=(const LatentMoments& o);
  double mean() const;
  // The standard deviation of a latent element drawn from the posterior of a training image.
  double std() const;
};
LatentMoments latent_moments(const Posterior& q);
// The same from the posteriors' means and standard deviations (a latent cache's).
LatentMoments latent_moments(const torch::Tensor& mean, const torch::Tensor& std);

}  // namespace ddpm::model
