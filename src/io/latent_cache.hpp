// The latent cache of latent diffusion: the training set encoded once by a run's autoencoder
// (`ddpm_dist autoencoder` writes it after training, to <run>/autoencoder/latents.h5). It holds each
// image's posterior mean and standard deviation, from which the diffusion stage draws a fresh
// latent every step, and the scale measured from them. It names the autoencoder that made it by
// a fingerprint of its weights, so that a cache is never used with another autoencoder.
#pragma once

#include <torch/torch.h>

#include <optional>
#include <string>

namespace ddpm::io {

struct LatentCache {
  torch::Tensor mean, std;  // float32 [N, C, s, s], training images in their file order; undefined: header only
  std::int64_t images = 0;
  // The latents' mean and standard deviation over the posterior draws of all N images
  // (model::latent_moments): the diffusion model sees (z - latent_mean) / latent_std.
  double latent_mean = 0.0, latent_std = 1.0;
  std::string autoencoder;            // weights_fingerprint of the autoencoder's EMA weights
  std::int64_t autoencoder_step = 0;  // the checkpoint step of those weights
};

// <autoencoder_dir>/latents.h5
std::string latent_cache_path(const std::string& autoencoder_dir);
// A 64-bit FNV-1a hash, in hex, of a module's tensor names, shapes and float32 values: the same
// weights give the same text on any machine and device.
std::string weights_fingerprint(torch::nn::Module& module);

void write_latent_cache(const std::string& path, const LatentCache& cache);
// Every dataset and attribute verified against its checksum (a damaged file throws DamagedFile);
// a missing file throws an Error naming the command that makes it. `tensors`: false reads the
// attributes alone.
LatentCache read_latent_cache(const std::string& path, bool tensors);

}  // namespace ddpm::io

namespace ddpm::io {

// The latents a diffusion run trains on, recorded in its run.h5 (/latent: the cache's attributes
// without its tensors) when training starts, so that a resume or an evaluation with another
// autoencoder is refused and samples are decoded with the scale they were trained at.
void write_latent_origin(const std::string& run_file, const LatentCache& header);
// Nothing when the run has no /latent (a pixel-space run, or none trained yet).
std::optional<LatentCache> read_latent_origin(const std::string& run_file);

}  // namespace ddpm::io
