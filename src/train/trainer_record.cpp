// The record: checkpoints written and read (resume), and what a failed write does.
#include <spdlog/spdlog.h>

#include <optional>

#include "io/checkpoint.hpp"
#include "io/h5.hpp"
#include "train/trainer.hpp"
#include "util/error.hpp"
#include "util/flat_tensors.hpp"

namespace ddpm::train {

std::vector<io::PowerEmaState> Trainer::power_ema_states() const {
  std::vector<io::PowerEmaState> states;
  const auto named = task_->model().named_parameters();
  std::vector<torch::Tensor> params;
  for (const auto& p : named) params.push_back(p.value());
  for (const auto& avg : power_emas_) {
    io::PowerEmaState s;
    s.sigma_rel = avg.sigma_rel();
    s.updates = avg.updates();
    const auto views = util::views_of(avg.values(), params);
    for (std::size_t i = 0; i < params.size(); ++i) s.values.emplace_back(named[i].key(), views[i]);
    states.push_back(std::move(s));
  }
  return states;
}

void Trainer::restore_power_emas(const std::vector<io::PowerEmaState>& read) {
  for (std::size_t k = 0; k < power_emas_.size(); ++k) power_emas_[k].set_updates(read[k].updates);
}

io::AdamState Trainer::adam_state() const {
  io::AdamState state;
  const auto named = task_->model().named_parameters();
  std::vector<torch::Tensor> params;
  for (const auto& p : named) params.push_back(p.value());
  const auto m1 = util::views_of(optimizer_->exp_avg(), params), m2 = util::views_of(optimizer_->exp_avg_sq(), params);
  for (std::size_t i = 0; i < params.size(); ++i) {
    state.exp_avg.emplace_back(named[i].key(), m1[i]);
    state.exp_avg_sq.emplace_back(named[i].key(), m2[i]);
  }
  state.steps = optimizer_->steps();
  return state;
}

void Trainer::resume(const std::string& path) {
  auto adam = adam_state();
  auto averages = power_ema_states();
  const auto info = io::read_checkpoint(path, model(), ema_model(), &adam, &cfg_, defining_keys(), &averages);
  optimizer_->set_steps(adam.steps);
  restore_power_emas(averages);
  continue_from(path, info);
}

bool Trainer::resume_newest() {
  std::vector<std::string> skipped;
  auto adam = adam_state();
  auto averages = power_ema_states();
  const auto found = io::read_newest_checkpoint(cfg_.out_dir(), model(), ema_model(), &adam, &skipped, &cfg_,
                                                defining_keys(), &averages);
  if (found) {
    optimizer_->set_steps(adam.steps);
    restore_power_emas(averages);
  }
  if (rank_ == 0)
    for (const auto& why : skipped) spdlog::warn("--resume auto: skipping {}", why);
  if (!found) return false;
  continue_from(found->path, found->info);
  if (rank_ == 0 && !skipped.empty())
    spdlog::warn("--resume auto: training continues from step {} ({}), the newest checkpoint that verifies",
                 found->info.step, found->path);
  return true;
}

config::KeyFilter Trainer::defining_keys() const {
  return [task = task_.get()](const std::string& key) { return task->defines_weights(key); };
}

void Trainer::continue_from(const std::string& path, const io::CheckpointInfo& info) {
  // io::read_checkpoint has refused a change of the keys that define the weights.
  std::string allowed;
  for (const auto& c : config::changed_keys(info.config_yaml, cfg_))
    if (!task_->defines_weights(c.key)) allowed += "\n  " + c.key + ": " + c.before + " in the checkpoint, " + c.now + " now";
  if (rank_ == 0 && !allowed.empty()) spdlog::info("changed since the checkpoint:{}", allowed);
  step_ = info.step;
  resumed_from_ = path;
  ema_->set_updates(info.ema_updates);
  if (rank_ == 0) {
    spdlog::info("resumed from {} at step {} (epoch {})", path, step_, info.epoch);
    if (!info.checksummed)
      spdlog::warn("{}", io::no_checksums_warning(path));
    if (info.world_size != world_)
      spdlog::info("the checkpoint was written by {} rank(s), this run has {}: the global batch of {} is the same, so "
                   "training continues on the same examples",
                   info.world_size, world_, cfg_.train.batch_size);
  }
}

void Trainer::write_checkpoint() { write_checkpoint_of(step_); }

void Trainer::write_checkpoint_of(std::int64_t step) {
  // Rank 0 writes while the others wait in the barrier.
  if (rank_ == 0) {
    const auto path = io::checkpoint_path(cfg_.out_dir(), step);
    io::CheckpointInfo info;
    info.step = step;
    info.epoch = epoch_after(step);
    info.ema_updates = ema_->updates();
    info.world_size = world_;
    info.config_yaml = cfg_.yaml;
    // The histories so far go with the weights: run.h5 has no other copy.
    std::optional<io::RunHistory> history;
    try {
      history = io::read_run_history(io::run_file_path(cfg_.out_dir()));
      history->train.insert(history->train.end(), unwritten_rows_.begin(), unwritten_rows_.end());
    } catch (const Error& e) {
      spdlog::warn("{}\nthe checkpoint of step {} carries no history; the next start sets run.h5 aside and rebuilds "
                   "it from an earlier checkpoint's",
                   e.what(), step);
    }
    try {
      const auto adam = adam_state();
      const auto averages = power_ema_states();
      io::write_checkpoint(path, model(), ema_model(), &adam, info, &averages, history ? &*history : nullptr);
      io::prune_checkpoints(cfg_.out_dir(), cfg_.train.keep_checkpoints);
      spdlog::info("checkpoint written: {}", path);
    } catch (const Error& e) {
      on_write_error(e, "training goes on; the next checkpoint is tried at its step");
    }
  }
  // Untimed: a slow disk on rank 0 is not a hung rank.
  comm_.set_phase("the checkpoint of step " + std::to_string(step), false);
  comm_.barrier();
}

void Trainer::write_power_ema_snapshot() {
  if (rank_ != 0) return;
  const auto path = io::power_ema_snapshot_path(cfg_.out_dir(), step_);
  try {
    io::write_power_ema_snapshot(path, step_, power_ema_states(), cfg_.yaml);
  } catch (const Error& e) {
    on_write_error(e, "training goes on without this snapshot of the power-function EMAs");
  }
}

void Trainer::on_write_error(const Error& e, const std::string& if_continuing) {
  const auto newest = io::latest_checkpoint(cfg_.out_dir());
  const std::string kept = newest ? "the newest complete checkpoint, " + *newest + ", is intact" : "no checkpoint was written yet";
  if (cfg_.train.on_write_error == "stop")
    throw Error(std::string(e.what()) + "\nstopping (train.on_write_error: stop): " + kept +
                "; free space or fix the folder, then continue with --resume auto");
  spdlog::warn("{}\ncontinuing (train.on_write_error: continue): {}; {}", e.what(), if_continuing, kept);
}

}  // namespace ddpm::train
