// Autoguidance's guide (Karras et al. 2024, "Guiding a diffusion model with a bad version of
// itself"): a weaker version of the model (this run at an earlier step, or another run, e.g. a
// smaller U-Net trained briefly), with its own EMA, as sample.guide_run, sample.guide_step and
// sample.guide_ema_sigma_rel name it. model::sampling_denoiser applies it on the denoiser.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "config/config.hpp"
#include "eval/posthoc_ema.hpp"
#include "model/diffusion.hpp"
#include "model/precision.hpp"
#include "model/unet.hpp"

namespace ddpm::eval {

struct Guide {
  model::UNet net{nullptr};                     // its EMA weights (or post-hoc EMA), evaluation mode, on the device
  std::unique_ptr<model::Diffusion> diffusion;  // its own (its prediction may differ from the model's)
  std::string run_dir;                          // empty: this run
  std::string checkpoint;                       // the file its architecture (and weights, unless post-hoc) came from
  std::int64_t step = 0;                        // the training step of its weights
  std::optional<PosthocEma> posthoc;
  model::GuideNet guide_net() { return {net, *diffusion}; }
  // E.g. "this run's post-hoc EMA sigma_rel 0.05 at step 4000 (...)".
  std::string describe() const;
};

// The guide cfg.sample names; nothing when it names none (SampleConfig::autoguided). Errors name
// the key and what to do: a step without a checkpoint (post-hoc EMA reaches any snapshot's), another
// run that does not share the model's data, classes, noise process or (latent space) autoencoder.
// `model_step`: the guided weights' step (rank 0 warns of a guide from this run that is no earlier).
std::optional<Guide> load_guide(const config::Config& cfg, std::int64_t model_step, const torch::Device& device,
                                int rank);

// The denoiser of `net` that `cfg` asks for (model::sampling_denoiser), autoguided by `guide` when
// there is one.
model::Denoiser guided_denoiser(model::UNet& net, const model::Diffusion& diffusion, const config::SampleConfig& cfg,
                                const torch::Device& device, Guide* guide);
// Network FLOPs per image of one call of that denoiser at guidance weight `w`: the network's, and the
// guide's, or (classifier-free) the network's again.
double guided_flops(model::UNet& net, const Guide* guide, double w);

}  // namespace ddpm::eval
