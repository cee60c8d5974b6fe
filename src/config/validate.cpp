#include "config/validate.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "util/error.hpp"

namespace ddpm::config {
namespace {

void require(bool ok, const std::string& source, const std::string& key, const std::string& what) {
  if (!ok) throw Error(source + ": key '" + key + "' " + what);
}

template <class T>
std::string str(const T& v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

void require_one_of(const std::string& source, const std::string& key, const std::string& value,
                    std::initializer_list<const char*> allowed) {
  std::string list;
  for (const char* a : allowed) {
    if (value == a) return;
    list += (list.empty() ? "" : ", ") + std::string(a);
  }
  throw Error(source + ": key '" + key + "' is '" + value + "'; allowed: " + list);
}

// The levels of a convolutional network (the U-Net's, the autoencoder's) under `section`.
void require_levels(const std::string& s, const std::string& section, int base_channels, const std::vector<int>& mult,
                    int num_res_blocks, int groups, int image_size, const std::string& what = "images") {
  const auto key = [&](const char* k) { return section + "." + k; };
  require(base_channels > 0, s, key("base_channels"), "must be > 0, got " + str(base_channels));
  require(!mult.empty(), s, key("channel_mult"), "must list at least one multiplier");
  for (int k : mult) require(k > 0, s, key("channel_mult"), "multipliers must be > 0, got " + str(k));
  require(num_res_blocks >= 1, s, key("num_res_blocks"), "must be >= 1, got " + str(num_res_blocks));
  require(groups >= 1, s, key("groups"), "must be >= 1, got " + str(groups));
  for (int k : mult)
    require((base_channels * k) % groups == 0, s, key("groups"),
            "must divide every level's channel count (base_channels x multiplier = " + str(base_channels * k) +
                "), got " + str(groups));
  require(image_size % (1 << (mult.size() - 1)) == 0, s, key("channel_mult"),
          "has " + str(mult.size()) + " levels, and the " + str(image_size) + "x" + str(image_size) +
              " " + what + " do not halve exactly " + str(mult.size() - 1) + " times; use fewer levels");
}

}  // namespace

void validate(const Config& c) {
  const auto& s = c.source;
  require_one_of(s, "run.device", c.run.device, {"auto", "cpu", "cuda"});
  require_one_of(s, "run.backend", c.run.backend, {"auto", "mpi", "nccl"});
  require(c.run.threads >= 0, s, "run.threads", "must be >= 0 (0 = auto), got " + str(c.run.threads));
  require(c.run.collective_timeout_s >= 0, s, "run.collective_timeout_s",
          "must be >= 0 seconds (0 = no watchdog), got " + str(c.run.collective_timeout_s));
  require(!c.run.name.empty(), s, "run.name", "must not be empty");
  require_one_of(s, "data.dataset", c.data.dataset, {"mnist", "fashion_mnist"});

  const auto& m = c.model;
  require_one_of(s, "diffusion.space", c.diffusion.space, {"pixel", "latent"});
  const auto& a = c.autoencoder;
  require_levels(s, "autoencoder", a.base_channels, a.channel_mult, a.num_res_blocks, a.groups, m.image_size);
  const auto shape = diffusion_shape(c);
  require_levels(s, "model", m.base_channels, m.channel_mult, m.num_res_blocks, m.groups, static_cast<int>(shape[1]),
                 c.latent() ? "latents of the autoencoder (diffusion.space: latent)" : "images");
  require(m.time_embed_mult >= 1, s, "model.time_embed_mult", "must be >= 1");
  require(m.dropout >= 0.0 && m.dropout < 1.0, s, "model.dropout", "must be in [0, 1), got " + str(m.dropout));
  // Both data sets have ten classes.
  require(m.num_classes == 0 || m.num_classes == 10, s, "model.num_classes",
          "must be 0 (unconditional) or 10 (class-conditional on the 10 classes of " + c.data.dataset + "), got " +
              str(m.num_classes));

  require(a.latent_channels >= 1, s, "autoencoder.latent_channels", "must be >= 1, got " + str(a.latent_channels));
  require(a.kl_weight >= 0.0 && std::isfinite(a.kl_weight), s, "autoencoder.kl_weight",
          "must be >= 0, got " + str(a.kl_weight));
  require(a.steps >= 1, s, "autoencoder.steps", "must be >= 1, got " + str(a.steps));
  require(a.batch_size >= 1, s, "autoencoder.batch_size", "must be >= 1, got " + str(a.batch_size));
  require(a.lr > 0.0 && std::isfinite(a.lr), s, "autoencoder.lr", "must be > 0, got " + str(a.lr));

  const auto& d = c.diffusion;
  require(d.timesteps >= 2, s, "diffusion.timesteps", "must be >= 2, got " + str(d.timesteps));
  require_one_of(s, "diffusion.schedule", d.schedule, {"linear", "cosine"});
  require(d.beta_start > 0.0 && d.beta_start < 1.0, s, "diffusion.beta_start",
          "must be in (0, 1), got " + str(d.beta_start));
  require(d.beta_end > d.beta_start && d.beta_end < 1.0, s, "diffusion.beta_end",
          "must be in (beta_start, 1) = (" + str(d.beta_start) + ", 1), got " + str(d.beta_end));
  require(d.cosine_s > 0.0, s, "diffusion.cosine_s", "must be > 0");
  require_one_of(s, "diffusion.prediction", d.prediction, {"eps", "v", "x0"});
  require_one_of(s, "diffusion.kind", d.kind, {"ddpm", "edm"});
  require(d.sigma_data > 0.0 && std::isfinite(d.sigma_data), s, "diffusion.sigma_data",
          "must be > 0, got " + str(d.sigma_data));
  require(std::isfinite(d.p_mean), s, "diffusion.p_mean", "must be finite, got " + str(d.p_mean));
  require(d.p_std > 0.0 && std::isfinite(d.p_std), s, "diffusion.p_std", "must be > 0, got " + str(d.p_std));
  require(d.kind == "ddpm" || d.prediction == "eps", s, "diffusion.prediction",
          "applies to kind ddpm only; kind edm trains the preconditioned output of EDM (remove the key)");

  const auto& t = c.train;
  require(t.steps >= 1, s, "train.steps", "must be >= 1, got " + str(t.steps));
  require(t.batch_size >= 1, s, "train.batch_size", "must be >= 1, got " + str(t.batch_size));
  require(t.micro_batch >= 0, s, "train.micro_batch",
          "must be >= 0 (0: each rank's whole share in one pass), got " + str(t.micro_batch));
  require(t.lr > 0.0 && std::isfinite(t.lr), s, "train.lr", "must be > 0, got " + str(t.lr));
  require(t.warmup_steps >= 0, s, "train.warmup_steps", "must be >= 0");
  require_one_of(s, "train.lr_schedule", t.lr_schedule, {"constant", "cosine"});
  require_one_of(s, "train.loss_weighting", t.loss_weighting, {"none", "min_snr"});
  require(t.min_snr_gamma > 0.0, s, "train.min_snr_gamma", "must be > 0, got " + str(t.min_snr_gamma));
  require(c.diffusion.kind == "ddpm" || t.loss_weighting == "none", s, "train.loss_weighting",
          "applies to diffusion.kind ddpm only; EDM's weighting is part of its preconditioning (use none)");
  require(t.lr_min >= 0.0 && t.lr_min <= t.lr, s, "train.lr_min",
          "must be in [0, train.lr = " + str(t.lr) + "], got " + str(t.lr_min));
  require(t.ema_share >= 0.0 && t.ema_share <= 1.0, s, "train.ema_share",
          "must be in [0, 1] (0: the fixed train.ema_decay), got " + str(t.ema_share));
  for (double r : t.phema_sigma_rels)
    require(r > 0.0 && r <= 0.2886, s, "train.phema_sigma_rels",
            "lengths must be in (0, 0.2886] (a power-function EMA spans at most sqrt(1/12) of training), got " + str(r));
  require(c.eval.ema_sigma_rel >= 0.0 && c.eval.ema_sigma_rel <= 0.2886, s, "eval.ema_sigma_rel",
          "must be 0 (the checkpoint's EMA) or in (0, 0.2886], got " + str(c.eval.ema_sigma_rel));
  require(t.phema_snapshot_every >= 0, s, "train.phema_snapshot_every",
          "must be >= 0 (0: at each checkpoint), got " + str(t.phema_snapshot_every));
  require(t.grad_clip >= 0.0, s, "train.grad_clip", "must be >= 0 (0 disables clipping)");
  require(t.weight_decay >= 0.0 && t.weight_decay * t.lr < 1.0, s, "train.weight_decay",
          "must be >= 0 (0: Adam, > 0: AdamW) with train.lr x weight_decay < 1 (each step scales the weights by "
          "1 - lr x weight_decay), got " + str(t.weight_decay));
  require(t.ema_decay >= 0.0 && t.ema_decay < 1.0, s, "train.ema_decay",
          "must be in [0, 1), got " + str(t.ema_decay));
  require(t.log_every >= 1, s, "train.log_every", "must be >= 1, got " + str(t.log_every));
  require(t.checkpoint_every >= 1, s, "train.checkpoint_every", "must be >= 1");
  require(t.keep_checkpoints >= 1, s, "train.keep_checkpoints", "must be >= 1, got " + str(t.keep_checkpoints));
  require(t.bucket_mb > 0.0, s, "train.bucket_mb", "must be > 0 (megabytes per all-reduce bucket), got " + str(t.bucket_mb));
  require_one_of(s, "train.precision", t.precision, {"fp32", "bf16", "auto"});
  require_one_of(s, "train.on_write_error", t.on_write_error, {"stop", "continue"});
  require(t.label_dropout >= 0.0 && t.label_dropout < 1.0, s, "train.label_dropout",
          "must be in [0, 1), got " + str(t.label_dropout));
  require(t.label_dropout == 0.0 || m.num_classes > 0, s, "train.label_dropout",
          "applies to a class-conditional model; set model.num_classes: 10 or remove the key");
  require(t.max_bad_steps >= 0, s, "train.max_bad_steps", "must be >= 0 (0: stop at the first), got " + str(t.max_bad_steps));

  const auto& p = c.sample;
  require(p.num_samples >= 1, s, "sample.num_samples", "must be >= 1, got " + str(p.num_samples));
  require_one_of(s, "sample.sampler", p.sampler, {"ddpm", "ddim", "heun", "dpmpp_2m"});
  require(p.steps >= 1 && p.steps <= d.timesteps, s, "sample.steps",
          "must be in [1, diffusion.timesteps = " + str(d.timesteps) + "], got " + str(p.steps));
  require(p.sampler != "ddpm" || p.steps == d.timesteps, s, "sample.steps",
          "must equal diffusion.timesteps (" + str(d.timesteps) +
              ") for the ddpm sampler; use sampler: ddim for fewer steps");
  require(p.eta >= 0.0 && p.eta <= 1.0, s, "sample.eta", "must be in [0, 1], got " + str(p.eta));
  require_one_of(s, "sample.variance", p.variance, {"beta", "posterior"});
  require(p.batch_size >= 1, s, "sample.batch_size", "must be >= 1");
  require(!(c.latent() && p.clip_x0), s, "sample.clip_x0",
          "clips estimates to the images' range [-1, 1], which standardised latents do not have "
          "(diffusion.space: latent); set sample.clip_x0: false");
  require_one_of(s, "sample.precision", p.precision, {"fp32", "bf16", "auto"});
  const auto& labels = p.labels;
  if (labels.mode != "list") require_one_of(s, "sample.labels", labels.mode, {"balanced", "random", "none"});
  require(labels.mode != "list" || !labels.classes.empty(), s, "sample.labels",
          "must name at least one class, e.g. [7], or be balanced, random or none");
  require(labels.mode == "list" || labels.mode == "balanced" || m.num_classes > 0, s, "sample.labels",
          "asks for classes, but the model is unconditional (model.num_classes: 0)");
  for (int k : labels.classes)
    require(k >= 0 && k < m.num_classes, s, "sample.labels",
            m.num_classes == 0 ? std::string("asks for classes, but the model is unconditional (model.num_classes: 0)")
                               : "holds " + str(k) + "; classes are 0 to " + str(m.num_classes - 1));
  require(p.guide_step >= 0, s, "sample.guide_step",
          "must be >= 0 (0: no autoguidance, or another run's newest weights), got " + str(p.guide_step));
  require(p.guide_ema_sigma_rel >= 0.0 && p.guide_ema_sigma_rel <= 0.2886, s, "sample.guide_ema_sigma_rel",
          "must be 0 (the checkpoint's EMA) or in (0, 0.2886], got " + str(p.guide_ema_sigma_rel));
  // Guidance needs a guide: a model's unconditional half, which label dropout trains, or autoguidance's.
  const bool classifier_free = m.num_classes > 0 && t.label_dropout > 0.0;
  auto check_guidance = [&](const std::string& key, double w, bool autoguided) {
    require(w >= 0.0 && std::isfinite(w), s, key, "must be >= 0 (0: no guidance), got " + str(w));
    require(w == 0.0 || classifier_free || autoguided, s, key,
            "needs a guide: a class-conditional model trained with label dropout (model.num_classes: 10, "
            "train.label_dropout: 0.1), or autoguidance (sample.guide_step or sample.guide_run), got " + str(w));
  };
  check_guidance("sample.guidance", p.guidance, p.autoguided());

  const auto& e = c.eval;
  require(e.classifier_epochs >= 0, s, "eval.classifier_epochs",
          "must be >= 0 (0: the data set's), got " + str(e.classifier_epochs));
  require_one_of(s, "eval.classifier_augment", e.classifier_augment, {"auto", "none", "shift", "shift_flip"});
  require_one_of(s, "eval.weights", e.weights, {"ema", "raw", "both"});
  require(e.batch_size >= 1, s, "eval.batch_size", "must be >= 1");
  require(e.trajectory_images >= 1 && e.trajectory_images <= 100, s, "eval.trajectory_images",
          "must be in [1, 100], got " + str(e.trajectory_images));
  require(e.every >= 0, s, "eval.every", "must be >= 0 (0: no evaluation during training), got " + str(e.every));
  require(e.during_samples >= 2, s, "eval.during_samples",
          "must be >= 2 (a covariance needs two samples), got " + str(e.during_samples));
  for (double w : e.guidance) check_guidance("eval.guidance", w, p.autoguided());
  for (auto seed : e.seeds) require(seed >= 0, s, "eval.seeds", "must list seeds >= 0, got " + str(seed));
  require(std::set<std::int64_t>(e.seeds.begin(), e.seeds.end()).size() == e.seeds.size(), s, "eval.seeds",
          "lists a seed twice: the evaluations would be the same");

  const auto& w = c.sweep;
  auto check_lengths = [&](const std::string& key, const std::vector<double>& lengths) {
    require(!lengths.empty(), s, key, "must list at least one length (0: the checkpoint's EMA)");
    for (double r : lengths)
      require(r >= 0.0 && r <= 0.2886, s, key,
              "must hold 0 (the checkpoint's EMA) or lengths in (0, 0.2886], got " + str(r));
  };
  check_lengths("sweep.ema_sigma_rels", w.ema_sigma_rels);
  check_lengths("sweep.guide_ema_sigma_rels", w.guide_ema_sigma_rels);
  require(!w.guide_steps.empty(), s, "sweep.guide_steps", "must list at least one step (0: no guide)");
  for (auto g : w.guide_steps) require(g >= 0, s, "sweep.guide_steps", "must hold steps >= 0, got " + str(g));
  require(!w.guidances.empty(), s, "sweep.guidances", "must list at least one weight (0: no guidance)");
  const bool any_guide = !p.guide_run.empty() || *std::max_element(w.guide_steps.begin(), w.guide_steps.end()) > 0;
  for (double g : w.guidances) check_guidance("sweep.guidances", g, any_guide);
  require(w.num_samples >= 2, s, "sweep.num_samples",
          "must be >= 2 (a covariance needs two samples), got " + str(w.num_samples));
  for (auto seed : w.seeds) require(seed >= 0, s, "sweep.seeds", "must list seeds >= 0, got " + str(seed));
  require(std::set<std::int64_t>(w.seeds.begin(), w.seeds.end()).size() == w.seeds.size(), s, "sweep.seeds",
          "lists a seed twice: the evaluations would be the same");
  require_one_of(s, "sweep.metric", w.metric, {"kid", "fid"});
  require(w.min_cond_accuracy >= 0.0 && w.min_cond_accuracy <= 1.0, s, "sweep.min_cond_accuracy",
          "must be a share in [0, 1] (0: no condition), got " + str(w.min_cond_accuracy));
  require(w.min_cond_accuracy == 0.0 || m.num_classes > 0, s, "sweep.min_cond_accuracy",
          "asks for a conditional accuracy, but the model is unconditional (model.num_classes: 0)");
}

}  // namespace ddpm::config
