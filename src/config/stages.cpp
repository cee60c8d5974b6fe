// The configurations derived from a run's: the shapes it diffuses, the U-Net's settings, and the
// stages it trains first (the autoencoder, the evaluation classifier).
#include "config/config.hpp"

namespace ddpm::config {

std::vector<std::int64_t> latent_shape(const Config& cfg) {
  const auto& a = cfg.autoencoder;
  const std::int64_t size = cfg.model.image_size >> (a.channel_mult.size() - 1);
  return {a.latent_channels, size, size};
}

std::vector<std::int64_t> diffusion_shape(const Config& cfg) {
  if (cfg.latent()) return latent_shape(cfg);
  return {cfg.model.in_channels, cfg.model.image_size, cfg.model.image_size};
}

ModelConfig unet_config(const Config& cfg) {
  auto m = cfg.model;
  const auto shape = diffusion_shape(cfg);
  m.in_channels = static_cast<int>(shape[0]);
  m.image_size = static_cast<int>(shape[1]);
  return m;
}

Config classifier_stage(const Config& cfg, std::int64_t train_images) {
  Config stage = cfg;
  auto& t = stage.train;
  constexpr std::int64_t kBatch = 128;
  t.batch_size = kBatch;
  t.steps = std::int64_t{cfg.classifier_epochs()} * (train_images / kBatch);
  t.lr = 1e-3;
  t.warmup_steps = 100;
  t.lr_schedule = "cosine";
  t.lr_min = 1e-5;
  t.loss_weighting = "none";
  t.weight_decay = 0.0;
  t.grad_clip = 0.0;
  t.ema_decay = 0.999;
  t.ema_share = 0.0;
  t.phema_sigma_rels.clear();
  t.log_every = 100;
  t.checkpoint_every = std::max<std::int64_t>(1, t.steps);
  t.keep_checkpoints = 1;
  // The classifier measures every run: bf16's machine-dependent rounding stays out of it.
  t.precision = "fp32";
  t.cuda_graphs = false;
  // Equal rows per rank: the same launch on the same machine then trains bitwise the same
  // classifier, whose fingerprint runs compare (the balancer's split follows measured times).
  t.balance = false;
  stage.run.seed = cfg.eval.classifier_seed;
  stage.run.out_dir = cfg.classifier_stem() + "_training";
  stage.eval.every = 0;
  return stage;
}

Config autoencoder_stage(const Config& cfg) {
  Config stage = cfg;
  stage.train.steps = cfg.autoencoder.steps;
  stage.train.batch_size = cfg.autoencoder.batch_size;
  stage.train.lr = cfg.autoencoder.lr;
  stage.train.lr_min = std::min(cfg.train.lr_min, cfg.autoencoder.lr);
  stage.run.out_dir = cfg.out_dir() + "/autoencoder";
  stage.train.phema_sigma_rels.clear();  // post-hoc EMA is the diffusion model's
  return stage;
}

}  // namespace ddpm::config
