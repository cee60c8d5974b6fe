#include "eval/trained_model.hpp"

#include <spdlog/spdlog.h>

#include "latent/first_stage.hpp"
#include "io/h5.hpp"
#include "util/error.hpp"

namespace ddpm::eval {

TrainedModel load_trained(const config::Config& cfg, const torch::Device& device, int rank) {
  const auto ckpt = io::latest_checkpoint(cfg.out_dir());
  if (!ckpt)
    throw Error(cfg.out_dir() + "/checkpoints: no complete checkpoint to sample from; run `ddpm_dist train " +
                cfg.source + "` first");
  const auto unet = config::unet_config(cfg);
  TrainedModel m{model::UNet(unet), model::UNet(unet), {}, *ckpt, latent::load_sample_space(cfg, device, rank), {}, {}};
  m.info = io::read_checkpoint(*ckpt, *m.live, *m.ema, nullptr, &cfg,
                               [&cfg](const std::string& key) { return config::defines_diffusion(cfg, key); });
  if (rank == 0 && !m.info.checksummed)
    spdlog::warn("{}", io::no_checksums_warning(*ckpt));
  if (cfg.eval.ema_sigma_rel > 0) {
    m.posthoc = load_posthoc_ema(cfg.out_dir(), cfg.eval.ema_sigma_rel, m.info.step, *m.ema);
    if (rank == 0) spdlog::info("ema weights: {}", m.posthoc->describe());
  }
  for (auto* net : {&m.live, &m.ema}) {
    (*net)->to(device);
    (*net)->eval();
  }
  m.guide = load_guide(cfg, m.info.step, device, rank);
  return m;
}

model::Denoiser TrainedModel::denoiser(model::UNet& net, const model::Diffusion& diffusion,
                                       const config::SampleConfig& cfg, const torch::Device& device) {
  return guided_denoiser(net, diffusion, cfg, device, guide ? &*guide : nullptr);
}

double TrainedModel::denoiser_flops(model::UNet& net, double w) const {
  return guided_flops(net, guide ? &*guide : nullptr, w);
}

}  // namespace ddpm::eval
