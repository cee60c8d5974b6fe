// The raw and EMA U-Nets of a run's newest complete checkpoint, ready for sampling, and the space
// their samples live in (latent::load_sample_space: images, or an autoencoder's latents).
#pragma once

#include <optional>
#include <string>

#include "config/config.hpp"
#include "eval/guide.hpp"
#include "eval/posthoc_ema.hpp"
#include "io/checkpoint.hpp"
#include "model/latent_space.hpp"
#include "model/unet.hpp"

namespace ddpm::eval {

struct TrainedModel {
  model::UNet live{nullptr}, ema{nullptr};
  io::CheckpointInfo info;
  std::string path;
  model::SampleSpace space{std::vector<std::int64_t>{}};
  // eval.ema_sigma_rel > 0: `ema` holds that post-hoc reconstruction, not the checkpoint's EMA.
  std::optional<PosthocEma> posthoc;
  // Autoguidance's guide when sample.guide_* names one (eval/guide.hpp).
  std::optional<Guide> guide;
  // The denoiser of `net` (live or ema) that cfg.sample asks for, guided by `guide` when there is one.
  model::Denoiser denoiser(model::UNet& net, const model::Diffusion& diffusion, const config::SampleConfig& cfg,
                           const torch::Device& device);
  // Network FLOPs of one denoiser call per image with guidance weight `w` (the guide's, or twice the
  // network's for classifier-free guidance of a conditional model).
  double denoiser_flops(model::UNet& net, double w) const;
  // The guide's description for records; empty without one.
  std::string guide_text() const { return guide ? guide->describe() : std::string(); }
};

// Throws ddpm::Error naming the folder and the command to run when there is no checkpoint, and
// io::DamagedFile when the newest fails its checksums (never an older one in its place: the user
// asked for the run's newest weights). Rank 0 warns of a file without checksums. With
// eval.ema_sigma_rel > 0, the EMA weights are the post-hoc reconstruction of that length from the
// run's snapshots up to the checkpoint's step (eval/posthoc_ema.hpp), which rank 0 logs; with
// sample.guide_* the guide is loaded too.
TrainedModel load_trained(const config::Config& cfg, const torch::Device& device, int rank);

}  // namespace ddpm::eval
