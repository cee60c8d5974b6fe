// Sampling N images across ranks. The images are cut into batches of sample.batch_size at fixed
// global positions, and each rank takes a contiguous run of whole batches, whose noise is drawn
// per global batch and step (model/sampler.hpp). So every image is computed from the same noise in
// the same batch whatever the number of ranks, and the gathered set is bitwise the same on CPU.
#pragma once

#include <torch/torch.h>

#include "config/config.hpp"
#include "dist/communicator.hpp"
#include "model/latent_space.hpp"
#include "model/sampler.hpp"

namespace ddpm::eval {

// This rank's images (float [count, C, H, W] in [-1, 1], on the CPU) of its batch_share (util/share.hpp), each of
// the class sample.labels asks for (model::sample_labels) when the model is conditional. `space`:
// where the network samples (latents are decoded to images, in batches of sample.batch_size);
// nullptr: images of cfg.model's size and channels.
torch::Tensor sample_local(dist::Communicator& comm, const model::Denoiser& denoise, const model::Diffusion& diffusion,
                           const config::Config& cfg, const torch::Device& device,
                           const model::StepCallback& on_step = nullptr, const model::SampleSpace* space = nullptr);

// Returns the float images [N, C, H, W] in [-1, 1] on rank 0 (in index order), undefined elsewhere.
torch::Tensor sample_distributed(dist::Communicator& comm, const model::Denoiser& denoise,
                                 const model::Diffusion& diffusion, const config::Config& cfg,
                                 const torch::Device& device, const model::StepCallback& on_step = nullptr,
                                 const model::SampleSpace* space = nullptr);

}  // namespace ddpm::eval
