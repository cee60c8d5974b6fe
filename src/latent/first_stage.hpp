// Loading latent diffusion's first stage for the second: the run's autoencoder (the EMA weights of
// its newest checkpoint in <run>/autoencoder), the latent cache it made, and the scale. Every
// mismatch is refused with what to run: a cache made by another autoencoder, a scale that its
// cache's contents contradict, a diffusion run trained on the latents of another autoencoder.
#pragma once

#include <string>

#include "config/config.hpp"
#include "dist/communicator.hpp"
#include "io/latent_cache.hpp"
#include "model/autoencoder.hpp"
#include "model/latent_space.hpp"

namespace ddpm::latent {

struct TrainedAutoencoder {
  model::Autoencoder ema{nullptr};  // in evaluation mode, on the device
  std::string path;                 // its checkpoint
  std::int64_t step = 0;
  std::string fingerprint;          // io::weights_fingerprint of `ema`
};
// Throws an Error naming the folder and `ddpm_dist autoencoder` when there is no checkpoint, and
// refuses one trained with other autoencoder.* keys than `cfg`'s.
TrainedAutoencoder load_autoencoder(const config::Config& cfg, const torch::Device& device, int rank);

// The posteriors of `images_u8` under `ae` (in evaluation mode): each rank encodes a share in whole
// batches of `batch` (batch_share, util/share.hpp), so every image meets the same batch at any number of
// ranks, and rank 0 gathers them in order and measures the scale (model::latent_moments); the
// other ranks' tensors are undefined. The caller names the autoencoder (fingerprint, step).
io::LatentCache encode_posteriors(dist::Communicator& comm, model::Autoencoder& ae, const torch::Tensor& images_u8,
                                  std::int64_t batch, const torch::Device& device);

// The latent scale of a cache, recomputed from its posteriors (model::latent_moments); throws when
// it differs from the scale the cache states by more than `rel_tol` (relative), which only a wrong
// or tampered scale does: both are sums in float64 of the same float32 values.
model::LatentScale checked_scale(const io::LatentCache& cache, const std::string& path, double rel_tol = 1e-6);

// What the diffusion stage trains on in latent space: the cache (with its tensors, on the CPU),
// checked against the autoencoder and its scale, and the space its samples decode from.
struct LatentTraining {
  io::LatentCache cache;
  model::SampleSpace space;
};
LatentTraining load_latent_training(const config::Config& cfg, const torch::Device& device, int rank);

// Where a trained run's samples live: the images, or (latent space) the latents of the autoencoder
// that the run's run.h5 names (/latent), decoded at the scale recorded there.
model::SampleSpace load_sample_space(const config::Config& cfg, const torch::Device& device, int rank);

}  // namespace ddpm::latent
