#include "io/checkpoint.hpp"

#include <cstdio>
#include <filesystem>
#include <regex>

#include "io/h5.hpp"
#include "io/named_tensors.hpp"
#include "util/clock.hpp"
#include "util/error.hpp"
#include "util/fault.hpp"

namespace ddpm::io {
namespace fs = std::filesystem;

std::string checkpoint_path(const std::string& run_dir, std::int64_t step) {
  char name[32];
  std::snprintf(name, sizeof name, "step_%08lld.h5", static_cast<long long>(step));
  return run_dir + "/checkpoints/" + name;
}

void write_checkpoint(const std::string& path, torch::nn::Module& model, torch::nn::Module& ema, const AdamState* adam,
                      const CheckpointInfo& info, const std::vector<PowerEmaState>* power_emas,
                      const RunHistory* history) {
  write_atomically(path, [&](H5::H5File& file) {
    auto root = file.openGroup("/");
    write_named(root, "model", named_tensors(model), "trained parameters and buffers, by module name");
    write_named(root, "ema", named_tensors(ema), "exponential moving average of the parameters (used for sampling)");
    if (adam) {
      auto optim = root.createGroup("optim");
      write_attr(optim, "description", "Adam state: first and second moments per parameter, one step count");
      write_named(optim, "exp_avg", adam->exp_avg, "Adam first moment");
      write_named(optim, "exp_avg_sq", adam->exp_avg_sq, "Adam second moment");
      write_tensor(optim, "step", torch::tensor({adam->steps}, torch::kInt64));
    }
    if (power_emas && !power_emas->empty()) write_power_emas(root, "phema", *power_emas);
    if (history) {
      auto g = root.createGroup("history");
      write_attr(g, "description", std::string("run.h5's /train and /eval_history up to this step: run.h5 is rebuilt "
                                               "from here where it is damaged"));
      write_run_history(g, *history);
    }
    // Only rank 0 writes checkpoints.
    fault::at(fault::Point::CheckpointWrite, info.step, 0);
    write_attr(root, "step", info.step);
    write_attr(root, "epoch", info.epoch);
    write_attr(root, "ema_updates", info.ema_updates);
    write_attr(root, "world_size", info.world_size);
    write_attr(root, "config", info.config_yaml);
    write_attr(root, "version", std::string(DDPM_VERSION));
    write_attr(root, "torch", std::string(TORCH_VERSION));
    write_attr(root, "created", now_utc());
    write_attr(root, "rng", std::string("none stored: every random draw derives from (run.seed, step, row of the global batch)"));
    // Written last: a reader trusts only files that carry it.
    write_attr(root, "complete", std::int64_t{1});
  });
}

namespace {
// The keys that define the weights (config::changed_defining_keys) whose stored values differ
// from `expected`'s, each with both values, and the --set that reads the checkpoint as trained.
std::string defining_keys_hint(const std::string& stored_yaml, const config::Config& expected,
                               const config::KeyFilter& defining) {
  const auto changes = config::changed_defining_keys(stored_yaml, expected, defining);
  if (changes.empty()) return "";
  std::string out = "\nthe keys that define what the weights mean differ:", sets;
  for (const auto& c : changes) {
    out += "\n  " + c.key + ": " + c.before + " in the checkpoint, " + c.now + " in " + expected.source;
    if (c.key == "model.num_classes")
      out += c.before == "0" ? " (the checkpoint's model is unconditional)"
                             : " (the checkpoint's model is class-conditional)";
    sets += " --set '" + c.key + "=" + c.before + "'";
  }
  return out + "\nuse the checkpoint's values (" + sets.substr(1) + "), or another run.name for a new run";
}
}  // namespace

CheckpointInfo read_checkpoint(const std::string& path, torch::nn::Module& model, torch::nn::Module& ema,
                               AdamState* adam, const config::Config* expected,
                               const config::KeyFilter& defining, std::vector<PowerEmaState>* power_emas) {
  auto file = open_read(path);
  const std::string what_to_do =
      "; move it aside to use an older checkpoint (`ddpm_dist inspect --verify " + path + "` lists every damaged dataset)";
  return read_verified(path, what_to_do, [&] {
    const auto root = file.openGroup("/");
    if (!has_attr(root, "complete"))
      throw DamagedFile("incomplete (no 'complete' attribute: its writer stopped before the end)");
    // Weights read under other settings than they were trained with would run without an error and
    // mean nothing (an eps network read as a v network draws grey blobs).
    if (expected && has_attr(root, "config")) {
      const auto hint = defining_keys_hint(read_attr_string(root, "config"), *expected, defining);
      if (!hint.empty()) throw Error(path + ": trained under other settings" + hint);
    }
    const auto model_tensors = named_tensors(model), ema_tensors = named_tensors(ema);
    try {
      check_named(path, file.openGroup("model"), "model", model_tensors);
      check_named(path, file.openGroup("ema"), "ema", ema_tensors);
    } catch (const Error& e) {
      if (!expected || !has_attr(root, "config")) throw;
      throw Error(e.what() + defining_keys_hint(read_attr_string(root, "config"), *expected, defining));
    }
    const auto model_values = read_named(file.openGroup("model"), model_tensors);
    const auto ema_values = read_named(file.openGroup("ema"), ema_tensors);
    // The optimizer state is read (and so verified) even when only the weights are wanted: a
    // checkpoint is accepted whole or not at all.
    if (adam && !file.nameExists("optim"))
      throw Error(path + ": holds no optimizer state; it cannot resume training");
    std::vector<torch::Tensor> m1, m2;
    std::int64_t adam_steps = 0;
    if (file.nameExists("optim")) {
      const auto optim = file.openGroup("optim");
      const auto g1 = file.openGroup("optim/exp_avg"), g2 = file.openGroup("optim/exp_avg_sq");
      // Shaped as the parameters when the caller has no optimizer: the names and shapes are checked all the same.
      Named like;
      for (const auto& p : model.named_parameters()) like.emplace_back(p.key(), p.value());
      const Named& e1 = adam ? adam->exp_avg : like;
      const Named& e2 = adam ? adam->exp_avg_sq : like;
      check_named(path, g1, "optim/exp_avg", e1);
      check_named(path, g2, "optim/exp_avg_sq", e2);
      m1 = read_named(g1, e1);
      m2 = read_named(g2, e2);
      if (!optim.nameExists("step")) throw DamagedFile("optim/step is missing");
      if (optim.childObjType("step") == H5O_TYPE_DATASET) {
        adam_steps = read_tensor(optim, "step").item<std::int64_t>();
      } else {
        // Checkpoints before 2026-12-06 hold the one count once per parameter; the first stands for all.
        const auto gs = file.openGroup("optim/step");
        const auto& first = like.front().first;
        if (!gs.nameExists(first)) throw DamagedFile("optim/step/" + first + " is missing");
        adam_steps = read_tensor(gs, first).item<std::int64_t>();
      }
    }
    const bool with_averages = power_emas && !power_emas->empty();
    PowerEmasRead averages;
    if (with_averages) averages = read_power_emas(path, root, "phema", *power_emas);
    CheckpointInfo info;
    info.step = read_attr_int(root, "step");
    info.epoch = read_attr_int(root, "epoch");
    info.ema_updates = read_attr_int(root, "ema_updates");
    info.world_size = read_attr_int(root, "world_size");
    info.config_yaml = read_attr_string(root, "config");
    info.checksummed = has_checksums(file);
    // Everything is read and verified: only now do the modules and the optimizer change.
    assign_named(model_tensors, model_values);
    assign_named(ema_tensors, ema_values);
    if (adam) {
      assign_named(adam->exp_avg, m1);
      assign_named(adam->exp_avg_sq, m2);
      adam->steps = adam_steps;
    }
    if (with_averages) assign_power_emas(*power_emas, averages);
    return info;
  });
}

std::string read_checkpoint_config(const std::string& path) {
  auto file = open_read(path);
  const auto root = file.openGroup("/");
  if (!has_attr(root, "config"))
    throw DamagedFile(path + ": holds no `config` attribute (the settings it was trained with); it was not written by "
                      "ddpm_dist train");
  return read_attr_string(root, "config");
}

namespace {
std::vector<fs::path> checkpoints_newest_first(const std::string& run_dir) {
  const fs::path dir = fs::path(run_dir) / "checkpoints";
  std::vector<fs::path> out;
  if (!fs::is_directory(dir)) return out;
  static const std::regex pattern(R"(step_(\d{8})\.h5)");
  for (const auto& e : fs::directory_iterator(dir))
    if (std::regex_match(e.path().filename().string(), pattern)) out.push_back(e.path());
  std::sort(out.rbegin(), out.rend());
  return out;
}
}  // namespace

std::vector<std::int64_t> checkpoint_steps(const std::string& run_dir) {
  std::vector<std::int64_t> steps;
  for (const auto& path : checkpoints_newest_first(run_dir)) steps.push_back(std::stoll(path.stem().string().substr(5)));
  std::reverse(steps.begin(), steps.end());
  return steps;
}

std::optional<std::string> latest_checkpoint(const std::string& run_dir, std::vector<std::string>* skipped) {
  for (const auto& path : checkpoints_newest_first(run_dir)) {
    try {
      auto file = open_read(path.string());
      if (has_attr(file.openGroup("/"), "complete")) return path.string();
      if (skipped) skipped->push_back(path.string() + ": incomplete (no 'complete' attribute)");
    } catch (const std::exception& e) {
      if (skipped) skipped->push_back(e.what());
    }
  }
  return std::nullopt;
}

std::optional<FoundCheckpoint> read_newest_checkpoint(const std::string& run_dir, torch::nn::Module& model,
                                                      torch::nn::Module& ema, AdamState* adam,
                                                      std::vector<std::string>* skipped,
                                                      const config::Config* expected,
                                                      const config::KeyFilter& defining,
                                                      std::vector<PowerEmaState>* power_emas) {
  for (const auto& path : checkpoints_newest_first(run_dir)) {
    try {
      return FoundCheckpoint{path.string(),
                             read_checkpoint(path.string(), model, ema, adam, expected, defining, power_emas)};
    } catch (const DamagedFile& e) {
      if (skipped) skipped->push_back(e.what());
    }
  }
  return std::nullopt;
}

void prune_checkpoints(const std::string& run_dir, int keep) {
  const auto all = checkpoints_newest_first(run_dir);
  std::error_code ec;
  for (std::size_t i = static_cast<std::size_t>(std::max(keep, 1)); i < all.size(); ++i) fs::remove(all[i], ec);
}

std::vector<std::string> remove_stale_temporaries(const std::string& run_dir) {
  static const std::regex checkpoint_tmp(R"(step_\d{8}\.h5\.tmp\.\d+)"), run_file_tmp(R"(run\.h5\.tmp\.\d+)"),
      snapshot_tmp(R"(snapshot_\d{8}\.h5\.tmp\.\d+)");
  std::vector<std::string> removed;
  std::error_code ec;
  for (const auto& [dir, pattern] : {std::pair{fs::path(run_dir) / "checkpoints", &checkpoint_tmp},
                                     std::pair{fs::path(run_dir), &run_file_tmp},
                                     std::pair{fs::path(run_dir) / "phema", &snapshot_tmp}}) {
    if (!fs::is_directory(dir)) continue;
    for (const auto& e : fs::directory_iterator(dir))
      if (std::regex_match(e.path().filename().string(), *pattern) && fs::remove(e.path(), ec))
        removed.push_back(e.path().string());
  }
  return removed;
}

}  // namespace ddpm::io
