#include "io/inspect.hpp"

#include <fmt/format.h>
#include <torch/torch.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <functional>

#include "io/h5.hpp"
#include "io/run_file.hpp"
#include "util/error.hpp"

namespace ddpm::io {
namespace {

std::string config_digest(const std::string& yaml, bool autoencoder = false) {
  const auto c = YAML::Load(yaml);
  auto get = [&](const char* section, const char* key) {
    if (!c[section] || !c[section][key]) return std::string("?");
    const auto n = c[section][key];
    if (n.IsSequence()) {
      std::string out = "[";
      for (std::size_t i = 0; i < n.size(); ++i) out += (i ? "," : "") + n[i].as<std::string>();
      return out + "]";
    }
    return n.as<std::string>();
  };
  if (autoencoder)
    return fmt::format(
        "  run {} (seed {}); autoencoder base {} x {} with {} res blocks, {} latent channels, kl_weight {}; {} steps of "
        "global batch {} at lr {}\n  config hash {:016x}\n",
        get("run", "name"), get("run", "seed"), get("autoencoder", "base_channels"), get("autoencoder", "channel_mult"),
        get("autoencoder", "num_res_blocks"), get("autoencoder", "latent_channels"), get("autoencoder", "kl_weight"),
        get("train", "steps"), get("train", "batch_size"), get("train", "lr"), std::hash<std::string>{}(yaml));
  return fmt::format(
      "  run {} (seed {}); model base {} x {} with {} res blocks; T = {} ({}){}; {} steps of global batch {} at lr {}\n"
      "  config hash {:016x}\n",
      get("run", "name"), get("run", "seed"), get("model", "base_channels"), get("model", "channel_mult"),
      get("model", "num_res_blocks"), get("diffusion", "timesteps"), get("diffusion", "schedule"),
      get("diffusion", "space") == "latent" ? "; diffusion in latent space" : "", get("train", "steps"),
      get("train", "batch_size"), get("train", "lr"), std::hash<std::string>{}(yaml));
}

// Post-hoc EMA's averages (/phema) of a checkpoint or a snapshot, in a line; empty without them.
std::string power_emas_line(const H5::H5File& file) {
  if (!file.nameExists("phema")) return "";
  const auto group = file.openGroup("phema");
  std::string lengths;
  std::int64_t updates = 0;
  for (hsize_t k = 0; k < group.getNumObjs(); ++k) {
    const auto sub = group.openGroup(std::to_string(k));
    lengths += fmt::format("{}{}", k ? ", " : "", read_attr_double(sub, "sigma_rel"));
    updates = read_attr_int(sub, "updates");
  }
  return fmt::format("  power-function EMAs for post-hoc EMA: sigma_rel {} ({} updates)\n", lengths, updates);
}

std::string describe_snapshot(const std::string& path, const H5::H5File& file) {
  const auto root = file.openGroup("/");
  std::string out = fmt::format("{}: post-hoc EMA snapshot\n  step {}, {} on {}\n", path, read_attr_int(root, "step"),
                                has_attr(root, "complete") ? "complete" : "INCOMPLETE", read_attr_string(root, "created"));
  out += power_emas_line(file);
  out += fmt::format("  ddpm_dist {}\n", read_attr_string(root, "version"));
  return out + config_digest(read_attr_string(root, "config"));
}

std::string describe_checkpoint(const std::string& path, const H5::H5File& file) {
  const auto root = file.openGroup("/");
  std::int64_t params = 0;
  const auto model = file.openGroup("model");
  for (hsize_t i = 0; i < model.getNumObjs(); ++i) {
    const auto shape = dataset_shape(model, model.getObjnameByIdx(i));
    std::int64_t n = 1;
    for (auto d : shape) n *= d;
    params += n;
  }
  const bool autoencoder = model.nameExists("enc_in.weight");
  std::string out = fmt::format("{}: {}checkpoint\n", path, autoencoder ? "autoencoder " : "");
  out += fmt::format("  step {}, epoch {}, written by {} rank(s), {} on {}\n", read_attr_int(root, "step"),
                     read_attr_int(root, "epoch"), read_attr_int(root, "world_size"),
                     has_attr(root, "complete") ? "complete" : "INCOMPLETE", read_attr_string(root, "created"));
  out += fmt::format("  {} tensors, {} values in /model; EMA {}; optimizer state {}\n", model.getNumObjs(), params,
                     file.nameExists("ema") ? "present" : "missing", file.nameExists("optim") ? "present" : "missing");
  out += power_emas_line(file);
  out += fmt::format("  ddpm_dist {}, LibTorch {}\n", read_attr_string(root, "version"), read_attr_string(root, "torch"));
  return out + config_digest(read_attr_string(root, "config"), autoencoder);
}

std::string describe_latent_cache(const std::string& path, const H5::H5File& file) {
  const auto g = file.openGroup("latents");
  const auto shape = dataset_shape(g, "mean");
  return fmt::format("{}: latent cache\n  {} posteriors (mean and std) of {}x{}x{}; latents have mean {:.4f} and std "
                     "{:.4f}\n  made by the autoencoder with weights {} (step {})\n",
                     path, shape[0], shape[1], shape[2], shape[3], read_attr_double(g, "latent_mean"),
                     read_attr_double(g, "latent_std"), read_attr_string(g, "autoencoder"),
                     read_attr_int(g, "autoencoder_step"));
}

std::string describe_run(const std::string& path, const H5::H5File& file) {
  std::string out = fmt::format("{}: run\n", path);
  if (file.nameExists("config")) {
    const auto g = file.openGroup("config");
    out += fmt::format("  started {} on {} rank(s), ddpm_dist {}, LibTorch {}\n", read_attr_string(g, "created"),
                       read_attr_int(g, "world_size"), read_attr_string(g, "version"), read_attr_string(g, "torch"));
    const auto yaml = read_attr_string(g, "yaml");
    out += config_digest(yaml, file.nameExists("autoencoder"));
  }
  if (file.nameExists("autoencoder")) {
    const auto g = file.openGroup("autoencoder");
    out += fmt::format("  autoencoder (EMA weights of step {}): latents have mean {:.4f} and std {:.4f} over {} training "
                       "images; test-set reconstruction MSE {:.5f} per pixel\n",
                       read_attr_int(g, "step"), read_attr_double(g, "latent_mean"), read_attr_double(g, "latent_std"),
                       read_attr_int(g, "images"), read_attr_double(g, "test_mse"));
  }
  if (file.nameExists("latent")) {
    const auto g = file.openGroup("latent");
    out += fmt::format("  latent space: the latents of the autoencoder with weights {} (step {}), seen as (z - {:.4f}) / "
                       "{:.4f}\n",
                       read_attr_string(g, "autoencoder"), read_attr_int(g, "autoencoder_step"),
                       read_attr_double(g, "latent_mean"), read_attr_double(g, "latent_std"));
  }
  const auto rows = read_train_metrics(path);
  if (!rows.empty()) {
    const auto best = std::min_element(rows.begin(), rows.end(), [](auto& a, auto& b) { return a.loss < b.loss; });
    std::vector<double> speed;
    for (const auto& r : rows) speed.push_back(r.img_per_s);
    std::nth_element(speed.begin(), speed.begin() + speed.size() / 2, speed.end());
    out += fmt::format("  training: {} steps logged in {} rows, {:.0f} s of wall time\n", rows.back().step, rows.size(),
                       rows.back().wall_s);
    out += fmt::format("  loss: last {:.4f} (step {}), best {:.4f} (step {}), first {:.4f}\n", rows.back().loss,
                       rows.back().step, best->loss, best->step, rows.front().loss);
    out += fmt::format("  throughput: median {:.1f} img/s\n", speed[speed.size() / 2]);
  } else {
    out += "  training: no history yet\n";
  }
  const auto evals = read_eval_history(path);
  if (!evals.empty()) {
    const auto best = std::min_element(evals.begin(), evals.end(), [](auto& a, auto& b) { return a.fid < b.fid; });
    double spent = 0;
    for (const auto& e : evals) spent += e.eval_s;
    auto line = [](const char* what, const EvalHistoryRow& e) {
      return fmt::format("    {}: step {:.0f} ({:.0f} s of training): KID {:.2f} +- {:.2f}, FID {:.3f} +- {:.3f} "
                         "(floor {:.3f}, {:.1f}x), precision {:.3f}, recall {:.3f}, confidence {:.2f}%, classes "
                         "{:.0f}/10\n",
                         what, e.step, e.train_wall_s, e.kid, e.kid_se, e.fid, e.fid_se, e.fid_floor,
                         e.fid / e.fid_floor, e.precision, e.recall, 100 * e.mean_confidence, 10 * e.classes_present);
    };
    out += fmt::format("  evaluations during training: {}, {:.0f} s in all\n", evals.size(), spent);
    out += line("best", *best) + line("last", evals.back());
  }
  if (file.nameExists("samples")) {
    const auto g = file.openGroup("samples");
    const auto ds = g.openDataSet("images");
    const auto shape = dataset_shape(g, "images");
    const double posthoc = has_attr(ds, "ema_sigma_rel") ? read_attr_double(ds, "ema_sigma_rel") : 0.0;
    const std::string weights = !read_attr_int(ds, "ema") ? "raw"
                                : posthoc > 0              ? fmt::format("post-hoc EMA (sigma_rel {})", posthoc)
                                                           : "EMA";
    out += fmt::format("  samples: {} images, {} with {} steps (eta {}), {} weights of step {}, seed {}\n", shape[0],
                       read_attr_string(ds, "sampler"), read_attr_int(ds, "steps"), read_attr_double(ds, "eta"),
                       weights, read_attr_int(ds, "checkpoint_step"), read_attr_int(ds, "seed"));
  }
  if (file.nameExists("eval")) {
    const auto eval = file.openGroup("eval");
    out += fmt::format("  evaluation (classifier test accuracy {:.2f}%, weights {}, reference {}):\n",
                       100 * read_attr_double(eval, "classifier_test_accuracy"),
                       has_attr(eval, "classifier_fingerprint") ? read_attr_string(eval, "classifier_fingerprint")
                                                                : std::string("not recorded"),
                       read_attr_string(eval, "reference"));
    auto record = [&](const H5::Group& g, const std::string& name) {
      auto scalar = [&](const char* key) { return read_tensor(g, key).item<double>(); };
      const bool conditional = g.nameExists("cond_accuracy");
      if (g.nameExists("kid"))
        out += fmt::format("    {}: FID {:.3f} +- {:.3f}, KID {:.2f} +- {:.2f}, FID at N=inf {:.3f} +- {:.3f}, "
                           "precision {:.3f}, recall {:.3f}, memorised {:.2f}%, sample seeds {}\n",
                           name, scalar("fid"), scalar("fid_se"), scalar("kid"), scalar("kid_se"),
                           scalar("fid_inf"), scalar("fid_inf_se"), scalar("precision"), scalar("recall"),
                           100 * scalar("memorised"), read_attr_string(g, "sample_seeds"));
      if (g.nameExists("reconstruction_fid"))
        out += fmt::format("    {}: the autoencoder's reconstructions: FID {:.3f}\n", name, scalar("reconstruction_fid"));
      out += fmt::format("    {}: FID {:.3f} (floor {:.3f}), confidence {:.2f}%, classes present {:.0f}/10{}, {} samples, "
                         "{} x{}, checkpoint step {}\n",
                         name, scalar("fid"), scalar("fid_floor"), 100 * scalar("mean_confidence"),
                         10 * scalar("classes_present"),
                         conditional ? fmt::format(", conditional accuracy {:.2f}%", 100 * scalar("cond_accuracy")) : "",
                         read_attr_int(g, "n_samples"), read_attr_string(g, "sampler"), read_attr_int(g, "steps"),
                         read_attr_int(g, "checkpoint_step"));
    };
    for (const char* w : {"ema", "raw"}) {
      if (!eval.nameExists(w)) continue;
      const auto g = eval.openGroup(w);
      if (g.nameExists("fid")) {
        record(g, w);
        continue;
      }
      // A conditional model: a group per guidance weight, in the order of the weights.
      std::vector<std::pair<double, std::string>> weights;
      for (hsize_t i = 0; i < g.getNumObjs(); ++i) {
        const auto name = g.getObjnameByIdx(i);
        if (name.rfind("guidance_", 0) == 0) weights.emplace_back(read_attr_double(g.openGroup(name), "guidance"), name);
      }
      std::sort(weights.begin(), weights.end());
      for (const auto& [weight, name] : weights) record(g.openGroup(name), fmt::format("{} guidance {:g}", w, weight));
    }
  }
  if (file.nameExists("sweep")) {
    const auto g = file.openGroup("sweep");
    const auto metric = read_attr_string(g, "metric");
    const auto best = read_attr_int(g, "best");
    auto at = [&](const char* name) { return read_tensor(g, name)[best].item<double>(); };
    const auto cells = read_tensor(g, "guidance").size(0);
    const double ema = at("ema_sigma_rel"), w = at("guidance");
    const std::string guide_name = "row_" + std::to_string(best);
    const auto guides = g.openGroup("guides");
    const std::string guide = w == 0 ? "none" : has_attr(guides, guide_name) ? read_attr_string(guides, guide_name)
                                                                        : "classifier-free";
    out += fmt::format("  sweep: {} cells of {} images (sample seeds {}), weights of step {}; best by {}: {:.2f} +- {:.2f} "
                       "(ema {}, guidance {:g}, guide: {})\n",
                       cells, read_attr_int(g, "num_samples"), read_attr_string(g, "sample_seeds"),
                       read_attr_int(g, "checkpoint_step"), metric, at(metric.c_str()),
                       at((metric + "_se").c_str()), ema > 0 ? fmt::format("post-hoc sigma_rel {:g}", ema) : "checkpoint's",
                       w, guide);
  }
  return out;
}

}  // namespace

std::string describe(const std::string& path) {
  auto file = open_read(path);
  try {
    if (file.nameExists("model") && has_attr(file.openGroup("/"), "step")) return describe_checkpoint(path, file);
    if (file.nameExists("config") || file.nameExists("train")) return describe_run(path, file);
    if (file.nameExists("latents")) return describe_latent_cache(path, file);
    if (file.nameExists("phema")) return describe_snapshot(path, file);
    throw Error(path + ": an HDF5 file, but neither a ddpm_dist run file, a checkpoint, a latent cache nor a post-hoc "
                       "EMA snapshot");
  } catch (const H5::Exception& e) {
    throw Error(path + ": cannot read (" + e.getDetailMsg() + ")");
  }
}

}  // namespace ddpm::io
