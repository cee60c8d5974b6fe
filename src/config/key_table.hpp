// The key table: every key of the configuration, named once. The reader, the writer and the
// lister of valid keys all walk it (config.cpp).
#pragma once

#include "config/config.hpp"

namespace ddpm::config {

// Every key of the configuration is named once, here; the reader and the writer both walk it.
template <class V>
void visit(Config& c, V& v) {
  v.section("run");
  v.field("name", c.run.name);
  v.field("out_dir", c.run.out_dir);
  v.field("seed", c.run.seed);
  v.field("device", c.run.device);
  v.field("backend", c.run.backend);
  v.field("threads", c.run.threads);
  v.field("collective_timeout_s", c.run.collective_timeout_s);

  v.section("data");
  v.field("dataset", c.data.dataset);
  v.field("dir", c.data.dir);

  v.section("model");
  v.field("base_channels", c.model.base_channels);
  v.field("channel_mult", c.model.channel_mult);
  v.field("num_res_blocks", c.model.num_res_blocks);
  v.field("attention_resolutions", c.model.attention_resolutions);
  v.field("mid_attention", c.model.mid_attention);
  v.field("groups", c.model.groups);
  v.field("time_embed_mult", c.model.time_embed_mult);
  v.field("dropout", c.model.dropout);
  v.field("num_classes", c.model.num_classes);

  v.section("autoencoder");
  v.field("base_channels", c.autoencoder.base_channels);
  v.field("channel_mult", c.autoencoder.channel_mult);
  v.field("num_res_blocks", c.autoencoder.num_res_blocks);
  v.field("latent_channels", c.autoencoder.latent_channels);
  v.field("groups", c.autoencoder.groups);
  v.field("kl_weight", c.autoencoder.kl_weight);
  v.field("steps", c.autoencoder.steps);
  v.field("batch_size", c.autoencoder.batch_size);
  v.field("lr", c.autoencoder.lr);

  v.section("diffusion");
  v.field("space", c.diffusion.space);
  v.field("timesteps", c.diffusion.timesteps);
  v.field("schedule", c.diffusion.schedule);
  v.field("beta_start", c.diffusion.beta_start);
  v.field("beta_end", c.diffusion.beta_end);
  v.field("cosine_s", c.diffusion.cosine_s);
  v.field("prediction", c.diffusion.prediction);
  v.field("kind", c.diffusion.kind);
  v.field("sigma_data", c.diffusion.sigma_data);
  v.field("p_mean", c.diffusion.p_mean);
  v.field("p_std", c.diffusion.p_std);

  v.section("train");
  v.field("steps", c.train.steps);
  v.field("batch_size", c.train.batch_size);
  v.field("micro_batch", c.train.micro_batch);
  v.field("lr", c.train.lr);
  v.field("warmup_steps", c.train.warmup_steps);
  v.field("lr_schedule", c.train.lr_schedule);
  v.field("lr_min", c.train.lr_min);
  v.field("loss_weighting", c.train.loss_weighting);
  v.field("min_snr_gamma", c.train.min_snr_gamma);
  v.field("weight_decay", c.train.weight_decay);
  v.field("grad_clip", c.train.grad_clip);
  v.field("ema_decay", c.train.ema_decay);
  v.field("ema_share", c.train.ema_share);
  v.field("phema_sigma_rels", c.train.phema_sigma_rels);
  v.field("phema_snapshot_every", c.train.phema_snapshot_every);
  v.field("log_every", c.train.log_every);
  v.field("checkpoint_every", c.train.checkpoint_every);
  v.field("keep_checkpoints", c.train.keep_checkpoints);
  v.field("bucket_mb", c.train.bucket_mb);
  v.field("overlap", c.train.overlap);
  v.field("balance", c.train.balance);
  v.field("precision", c.train.precision);
  v.field("max_bad_steps", c.train.max_bad_steps);
  v.field("cuda_graphs", c.train.cuda_graphs);
  v.field("on_write_error", c.train.on_write_error);
  v.field("label_dropout", c.train.label_dropout);

  v.section("sample");
  v.field("num_samples", c.sample.num_samples);
  v.field("sampler", c.sample.sampler);
  v.field("steps", c.sample.steps);
  v.field("eta", c.sample.eta);
  v.field("variance", c.sample.variance);
  v.field("batch_size", c.sample.batch_size);
  v.field("clip_x0", c.sample.clip_x0);
  v.field("precision", c.sample.precision);
  v.field("cuda_graphs", c.sample.cuda_graphs);
  v.field("labels", c.sample.labels);
  v.field("guidance", c.sample.guidance);
  v.field("guide_run", c.sample.guide_run);
  v.field("guide_step", c.sample.guide_step);
  v.field("guide_ema_sigma_rel", c.sample.guide_ema_sigma_rel);

  v.section("eval");
  v.field("classifier", c.eval.classifier);
  v.field("classifier_epochs", c.eval.classifier_epochs);
  v.field("classifier_augment", c.eval.classifier_augment);
  v.field("classifier_seed", c.eval.classifier_seed);
  v.field("weights", c.eval.weights);
  v.field("ema_sigma_rel", c.eval.ema_sigma_rel);
  v.field("batch_size", c.eval.batch_size);
  v.field("trajectory_images", c.eval.trajectory_images);
  v.field("every", c.eval.every);
  v.field("during_samples", c.eval.during_samples);
  v.field("guidance", c.eval.guidance);
  v.field("seeds", c.eval.seeds);

  v.section("sweep");
  v.field("ema_sigma_rels", c.sweep.ema_sigma_rels);
  v.field("guide_steps", c.sweep.guide_steps);
  v.field("guide_ema_sigma_rels", c.sweep.guide_ema_sigma_rels);
  v.field("guidances", c.sweep.guidances);
  v.field("num_samples", c.sweep.num_samples);
  v.field("seeds", c.sweep.seeds);
  v.field("metric", c.sweep.metric);
  v.field("min_cond_accuracy", c.sweep.min_cond_accuracy);
}

}  // namespace ddpm::config
