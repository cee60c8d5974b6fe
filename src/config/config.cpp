#include "config/config.hpp"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "util/error.hpp"

namespace ddpm::config {
namespace {

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

  v.section("eval");
  v.field("classifier", c.eval.classifier);
  v.field("classifier_epochs", c.eval.classifier_epochs);
  v.field("classifier_seed", c.eval.classifier_seed);
  v.field("weights", c.eval.weights);
  v.field("batch_size", c.eval.batch_size);
  v.field("trajectory_images", c.eval.trajectory_images);
  v.field("every", c.eval.every);
  v.field("during_samples", c.eval.during_samples);
  v.field("guidance", c.eval.guidance);
  v.field("seeds", c.eval.seeds);
}

template <class T>
struct is_list : std::false_type {};
template <class T>
struct is_list<std::vector<T>> : std::true_type {};

template <class T>
const char* type_name() {
  if constexpr (std::is_same_v<T, bool>) return "true or false";
  else if constexpr (std::is_integral_v<T>) return "an integer";
  else if constexpr (std::is_floating_point_v<T>) return "a number";
  else if constexpr (std::is_same_v<T, std::string>) return "a string";
  else if constexpr (std::is_same_v<T, std::vector<double>>) return "a list of numbers";
  else return "a list of integers";
}

std::string where(const std::string& source, const YAML::Node& node) {
  const auto m = node.Mark();
  if (m.is_null()) return source;
  return source + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
}

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// Collects every valid "section.key" so that unknown keys can be answered with the nearest one.
struct KeyLister {
  std::string current;
  std::vector<std::string> sections;
  std::vector<std::string> keys;
  void section(const char* s) {
    current = s;
    sections.push_back(s);
  }
  template <class T>
  void field(const char* k, T&) {
    keys.push_back(current + "." + k);
  }
};

std::string nearest(const std::string& wanted, const std::vector<std::string>& candidates) {
  std::string best;
  std::size_t best_d = std::string::npos;
  for (const auto& c : candidates) {
    const auto d = edit_distance(wanted, c);
    if (d < best_d) best_d = d, best = c;
  }
  return best;
}

class Reader {
 public:
  Reader(const YAML::Node& root, std::string source, std::set<std::string> overridden)
      : root_(root), source_(std::move(source)), overridden_(std::move(overridden)) {}

  void section(const char* s) {
    current_ = s;
    node_.reset(root_[s]);
    if (node_ && !node_.IsMap() && !node_.IsNull())
      throw Error(where(source_, node_) + ": section '" + current_ +
                  "' must be a mapping of keys to values");
  }

  template <class T>
  void field(const char* key, T& out) {
    YAML::Node value;
    if (lookup(key, value)) convert(key, value, out);
  }

  // sample.labels: a list of classes, or one of the modes by name (validate() checks which).
  void field(const char* key, LabelChoice& out) {
    YAML::Node value;
    if (!lookup(key, value)) return;
    if (value.IsSequence()) {
      out.mode = "list";
      convert(key, value, out.classes);
    } else {
      out.classes.clear();
      convert(key, value, out.mode);
    }
  }

 private:
  // The key's value in the current section, when it is there.
  bool lookup(const char* key, YAML::Node& value) {
    if (!node_ || !node_.IsMap()) return false;
    value.reset(node_[key]);
    return value.IsDefined();
  }

  template <class T>
  void convert(const char* key, const YAML::Node& value, T& out) const {
    const std::string full = current_ + "." + key;
    const std::string origin = overridden_.count(full) ? "--set " + full : where(source_, value);
    try {
      if constexpr (is_list<T>::value) {
        if (!value.IsSequence()) throw YAML::BadConversion(value.Mark());
      } else if (!value.IsScalar()) {
        throw YAML::BadConversion(value.Mark());
      }
      if constexpr (std::is_unsigned_v<T> && !std::is_same_v<T, bool>) {
        if (value.Scalar().find('-') != std::string::npos) throw YAML::BadConversion(value.Mark());
      }
      out = value.as<T>();
    } catch (const YAML::Exception&) {
      std::ostringstream got;
      got << value;
      throw Error(origin + ": key '" + full + "' must be " + type_name<T>() + ", got '" +
                  got.str() + "'");
    }
  }

  YAML::Node root_;
  YAML::Node node_;
  std::string current_;
  std::string source_;
  std::set<std::string> overridden_;
};

class Writer {
 public:
  void section(const char* s) { node_.reset(out_[s]); }
  template <class T>
  void field(const char* key, T& value) {
    node_[key] = value;
  }
  void field(const char* key, LabelChoice& value) {
    if (value.mode == "list") {
      node_[key] = value.classes;
    } else {
      node_[key] = value.mode;
    }
  }
  std::string text() const {
    YAML::Emitter e;
    // 15 significant digits print 0.2 as 0.2, not 0.20000000000000001.
    e.SetDoublePrecision(15);
    e << out_;
    return e.c_str();
  }

 private:
  YAML::Node out_;
  YAML::Node node_;
};

// Keys that were removed, with what took their place.
const std::map<std::string, std::string>& retired_keys() {
  static const std::map<std::string, std::string> retired = {
      {"sample.use_ema", "eval.weights (ema or raw) chooses the weights `ddpm_dist sample` draws from"}};
  return retired;
}

void reject_unknown_keys(const YAML::Node& root, const std::string& source,
                         const std::set<std::string>& overridden) {
  KeyLister lister;
  Config dummy;
  visit(dummy, lister);
  if (!root.IsMap())
    throw Error(where(source, root) + ": the configuration must be a mapping of sections (" +
                "run, data, model, autoencoder, diffusion, train, sample, eval)");
  for (const auto& sec : root) {
    const auto name = sec.first.as<std::string>();
    if (std::find(lister.sections.begin(), lister.sections.end(), name) == lister.sections.end())
      throw Error(where(source, sec.first) + ": unknown section '" + name +
                  "'; did you mean '" + nearest(name, lister.sections) + "'?");
    if (!sec.second.IsMap()) continue;
    for (const auto& kv : sec.second) {
      const auto full = name + "." + kv.first.as<std::string>();
      if (std::find(lister.keys.begin(), lister.keys.end(), full) != lister.keys.end()) continue;
      const std::string origin = overridden.count(full) ? "--set " + full : where(source, kv.first);
      const auto retired = retired_keys().find(full);
      if (retired != retired_keys().end())
        throw Error(origin + ": '" + full + "' is no longer a key: " + retired->second + "; remove it");
      throw Error(origin + ": unknown key '" + full + "'; did you mean '" +
                  nearest(full, lister.keys) + "'?");
    }
  }
}

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
  // Guidance needs the unconditional half that label dropout trains.
  auto check_guidance = [&](const std::string& key, double w) {
    require(w >= 0.0 && std::isfinite(w), s, key, "must be >= 0 (0: no guidance), got " + str(w));
    require(w == 0.0 || (m.num_classes > 0 && t.label_dropout > 0.0), s, key,
            "needs a class-conditional model trained with label dropout (model.num_classes: 10, "
            "train.label_dropout: 0.1), got " + str(w));
  };
  check_guidance("sample.guidance", p.guidance);

  const auto& e = c.eval;
  require(e.classifier_epochs >= 1, s, "eval.classifier_epochs", "must be >= 1, got " + str(e.classifier_epochs));
  require_one_of(s, "eval.weights", e.weights, {"ema", "raw", "both"});
  require(e.batch_size >= 1, s, "eval.batch_size", "must be >= 1");
  require(e.trajectory_images >= 1 && e.trajectory_images <= 100, s, "eval.trajectory_images",
          "must be in [1, 100], got " + str(e.trajectory_images));
  require(e.every >= 0, s, "eval.every", "must be >= 0 (0: no evaluation during training), got " + str(e.every));
  require(e.during_samples >= 2, s, "eval.during_samples",
          "must be >= 2 (a covariance needs two samples), got " + str(e.during_samples));
  require(e.guidance.empty() || m.num_classes > 0, s, "eval.guidance",
          "lists guidance weights, which apply to a class-conditional model (model.num_classes: 10)");
  for (double w : e.guidance) check_guidance("eval.guidance", w);
  for (auto seed : e.seeds) require(seed >= 0, s, "eval.seeds", "must list seeds >= 0, got " + str(seed));
  require(std::set<std::int64_t>(e.seeds.begin(), e.seeds.end()).size() == e.seeds.size(), s, "eval.seeds",
          "lists a seed twice: the evaluations would be the same");
}

}  // namespace

Config parse(const std::string& yaml_text, const std::string& source,
             const std::vector<std::string>& overrides) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::ParserException& e) {
    throw Error(source + ":" + std::to_string(e.mark.line + 1) + ":" +
                std::to_string(e.mark.column + 1) + ": YAML syntax error: " + e.msg);
  }
  if (root.IsNull()) root = YAML::Node(YAML::NodeType::Map);

  std::set<std::string> overridden;
  for (const auto& o : overrides) {
    const auto eq = o.find('=');
    const auto dot = o.find('.');
    if (eq == std::string::npos || dot == std::string::npos || dot > eq)
      throw Error("--set " + o + ": expected section.key=value, e.g. --set train.lr=1e-3");
    const auto section = o.substr(0, dot);
    const auto key = o.substr(dot + 1, eq - dot - 1);
    YAML::Node value;
    try {
      value = YAML::Load(o.substr(eq + 1));
    } catch (const YAML::ParserException& e) {
      throw Error("--set " + o + ": value does not parse as YAML: " + e.msg);
    }
    if (root[section] && !root[section].IsMap())
      throw Error("--set " + o + ": section '" + section + "' is not a mapping");
    root[section][key] = value;
    overridden.insert(section + "." + key);
  }

  reject_unknown_keys(root, source, overridden);
  Config c;
  Reader reader(root, source, overridden);
  visit(c, reader);
  c.source = source;
  validate(c);
  Writer writer;
  visit(c, writer);
  c.yaml = writer.text();
  return c;
}

std::string describe(const LabelChoice& labels) {
  if (labels.mode != "list") return labels.mode;
  std::string out;
  for (int k : labels.classes) out += (out.empty() ? "" : ", ") + std::to_string(k);
  return "[" + out + "]";
}

std::string Config::data_dir() const {
  if (!data.dir.empty()) return data.dir;
  return data.dataset == "fashion_mnist" ? "/usr/share/datasets/fashion-mnist" : "data/mnist";
}

std::string Config::classifier_path() const {
  return eval.classifier.empty() ? "results/classifier_" + data.dataset + ".h5" : eval.classifier;
}

std::vector<std::uint64_t> EvalConfig::sample_seeds(std::uint64_t run_seed) const {
  if (seeds.empty()) return {run_seed};
  return std::vector<std::uint64_t>(seeds.begin(), seeds.end());
}

std::string Config::classifier_stem() const {
  const auto path = classifier_path();
  const bool h5 = path.size() > 3 && path.compare(path.size() - 3, 3, ".h5") == 0;
  return h5 ? path.substr(0, path.size() - 3) : path;
}

std::vector<KeyChange> changed_keys(const std::string& stored_yaml, const Config& current) {
  const YAML::Node stored = YAML::Load(stored_yaml);
  const YAML::Node now = YAML::Load(current.yaml);
  auto text = [](const YAML::Node& n) {
    // A number as the shortest text that reads back as it (the resolved YAML holds 0.2 as
    // 0.20000000000000001).
    if (n.IsScalar()) {
      const auto& t = n.Scalar();
      char* end = nullptr;
      const double v = std::strtod(t.c_str(), &end);
      if (!t.empty() && end == t.c_str() + t.size()) return fmt::format("{}", v);
    }
    YAML::Emitter e;
    e.SetDoublePrecision(15);
    e << YAML::Flow << n;
    return std::string(e.c_str());
  };
  std::vector<KeyChange> out;
  for (const auto& sec : now) {
    const auto name = sec.first.as<std::string>();
    if (!stored[name] || !stored[name].IsMap()) continue;
    for (const auto& kv : sec.second) {
      const auto key = kv.first.as<std::string>();
      // A key the stored file lacks came after it: its default keeps the old behaviour.
      const YAML::Node before = stored[name][key];
      if (!before) continue;
      const auto a = text(before), b = text(kv.second);
      if (a != b) out.push_back({name + "." + key, a, b});
    }
  }
  return out;
}

bool is_model_key(const std::string& key) { return key.rfind("model.", 0) == 0; }

std::vector<KeyChange> changed_defining_keys(const std::string& stored_yaml, const Config& current,
                                             const KeyFilter& defining) {
  std::vector<KeyChange> all;
  try {
    all = changed_keys(parse(stored_yaml, "the stored configuration").yaml, current);
  } catch (const Error&) {
    all = changed_keys(stored_yaml, current);  // from another version: compare the keys it has
  }
  std::vector<KeyChange> out;
  for (auto& c : all)
    if (defining ? defining(c.key) : is_model_key(c.key)) out.push_back(std::move(c));
  return out;
}

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

bool defines_diffusion(const Config& cfg, const std::string& key) {
  if (key == "diffusion.p_mean" || key == "diffusion.p_std") return false;
  return key.rfind("model.", 0) == 0 || key.rfind("diffusion.", 0) == 0 || key == "data.dataset" ||
         (cfg.latent() && defines_autoencoder(key));
}

bool defines_classifier(const std::string& key) { return key == "data.dataset"; }

Config classifier_stage(const Config& cfg, std::int64_t train_images) {
  Config stage = cfg;
  auto& t = stage.train;
  constexpr std::int64_t kBatch = 128;
  t.batch_size = kBatch;
  t.steps = std::int64_t{cfg.eval.classifier_epochs} * (train_images / kBatch);
  t.lr = 1e-3;
  t.warmup_steps = 100;
  t.lr_schedule = "cosine";
  t.lr_min = 1e-5;
  t.loss_weighting = "none";
  t.weight_decay = 0.0;
  t.grad_clip = 0.0;
  t.ema_decay = 0.999;
  t.ema_share = 0.0;
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

bool defines_autoencoder(const std::string& key) {
  if (key == "data.dataset") return true;
  if (key.rfind("autoencoder.", 0) != 0) return false;
  return key != "autoencoder.steps" && key != "autoencoder.batch_size" && key != "autoencoder.lr";
}

Config autoencoder_stage(const Config& cfg) {
  Config stage = cfg;
  stage.train.steps = cfg.autoencoder.steps;
  stage.train.batch_size = cfg.autoencoder.batch_size;
  stage.train.lr = cfg.autoencoder.lr;
  stage.train.lr_min = std::min(cfg.train.lr_min, cfg.autoencoder.lr);
  stage.run.out_dir = cfg.out_dir() + "/autoencoder";
  return stage;
}

Config load(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path);
  if (!in)
    throw Error(path + ": cannot open the configuration file; check the path (configs/ holds "
                "smoke.yaml, mnist_cpu.yaml, mnist.yaml)");
  std::stringstream text;
  text << in.rdbuf();
  return parse(text.str(), path, overrides);
}

}  // namespace ddpm::config
