// The raw and EMA U-Nets of a run's newest complete checkpoint, ready for sampling, and the space
// their samples live in (latent::load_sample_space: images, or an autoencoder's latents).
#pragma once

#include <optional>
#include <string>

#include "config/config.hpp"
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
};

// Throws ddpm::Error naming the folder and the command to run when there is no checkpoint, and
// io::DamagedFile when the newest fails its checksums (never an older one in its place: the user
// asked for the run's newest weights). Rank 0 warns of a file without checksums. With
// eval.ema_sigma_rel > 0, the EMA weights are the post-hoc reconstruction of that length from the
// run's snapshots up to the checkpoint's step (eval/posthoc_ema.hpp), which rank 0 logs.
TrainedModel load_trained(const config::Config& cfg, const torch::Device& device, int rank);

}  // namespace ddpm::eval
