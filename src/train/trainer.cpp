// The loop: construction, the learning rate, and run(), which repeats the step
// (trainer_step.cpp), reads the ranks' agreements (trainer_health.cpp) at the steps that log,
// checkpoint or evaluate, and keeps the record (trainer_record.cpp).
#include "train/trainer.hpp"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>

#include "io/checkpoint.hpp"
#include "io/run_file.hpp"
#include "model/precision.hpp"
#include "train/diffusion_task.hpp"
#include "util/clock.hpp"
#include "util/error.hpp"
#include "util/flat_tensors.hpp"
#include "util/stop_request.hpp"

namespace ddpm::train {
namespace {

std::string format_duration(double seconds) {
  const auto s = static_cast<long long>(seconds + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, (s / 60) % 60, s % 60);
  return buf;
}

}  // namespace

Trainer::Trainer(const config::Config& cfg, std::unique_ptr<Task> task, torch::Device device, dist::Communicator& comm)
    : cfg_(cfg),
      device_(device),
      comm_(comm),
      rank_(comm.rank()),
      world_(comm.size()),
      task_(std::move(task)),
      plan_(task_->examples(), cfg.train.batch_size, cfg.run.seed, device),
      // A GPU's host clock does not see when its queued work ends, and the GPUs of a job are alike.
      balancer_(cfg.train.batch_size, world_, cfg.train.balance && !device.is_cuda()),
      bf16_(model::resolve_bf16(cfg.train.precision, device, "train.precision")),
      graphs_(model::resolve_cuda_graphs(cfg.train.cuda_graphs, device, "train.cuda_graphs")) {
  if (graphs_ && cfg.train.micro_batch > 0 && cfg.train.micro_batch < cfg.train.batch_size / world_)
    throw Error(cfg.source + ": train.micro_batch = " + std::to_string(cfg.train.micro_batch) +
                " splits a rank's share into passes, which train.cuda_graphs cannot replay; set train.micro_batch: 0 "
                "or train.cuda_graphs: false");
  if (cfg.train.batch_size % world_ != 0)
    throw Error(cfg.source + ": train.batch_size = " + std::to_string(cfg.train.batch_size) +
                " (the global batch) must be divisible by the number of ranks (" + std::to_string(world_) +
                "); change the batch size or the -np of mpirun");
  auto& model = task_->model();
  dist::broadcast_module(comm_, model);
  // Parameters, gradients, Adam's moments and the EMA are each one buffer, views laid out alike.
  values_ = util::flat_buffer(model.parameters());
  ema_ = std::make_unique<model::Ema>(model, task_->ema_model(), cfg.train.ema_decay, cfg.train.ema_share);
  for (double sigma_rel : cfg.train.phema_sigma_rels) power_emas_.emplace_back(values_, sigma_rel);
  grad_sync_ = std::make_unique<dist::GradSync>(
      comm_, model.parameters(),
      dist::GradSyncOptions{cfg.train.bucket_mb, cfg.train.bucket_mb / 4,
                            dist::overlap_in_backward(cfg.train.overlap, graphs_, device, comm)});
  optimizer_ = std::make_unique<Adam>(values_, grad_sync_->grads(),
                                      AdamSettings{cfg.train.lr, 0.9, 0.999, 1e-8, cfg.train.weight_decay});
  bad_in_row_device_ = torch::zeros({}, values_.options().dtype(torch::kFloat64));
  halted_device_ = torch::zeros({}, values_.options().dtype(torch::kBool));
}

Trainer::Trainer(const config::Config& cfg, const data::Dataset& train_set, torch::Device device,
                 dist::Communicator& comm)
    : Trainer(cfg, std::make_unique<DiffusionTask>(cfg, train_set, device), device, comm) {}

void Trainer::set_evaluation(std::int64_t every, Evaluation evaluate) {
  eval_every_ = every;
  evaluate_ = std::move(evaluate);
}

double Trainer::lr_at(std::int64_t step) const {
  const auto& t = cfg_.train;
  const auto w = t.warmup_steps;
  if (w > 0 && step < w) return t.lr * double(step + 1) / double(w);
  if (t.lr_schedule == "constant" || t.steps <= w + 1) return t.lr;
  // Cosine from lr at the first step after warm-up to lr_min at the last step (steps - 1).
  const double progress = double(step - w) / double(t.steps - 1 - w);
  return t.lr_min + (t.lr - t.lr_min) * 0.5 * (1.0 + std::cos(M_PI * std::min(1.0, progress)));
}

Trainer::Outcome Trainer::run() {
  const auto total = cfg_.train.steps;
  const auto run_file = io::run_file_path(cfg_.out_dir());
  double wall_offset = 0.0;
  if (rank_ == 0) {
    spdlog::info("training {} steps from step {}: global batch {} = {} per rank x {} ranks{}, {} steps per epoch",
                 total, step_, cfg_.train.batch_size, cfg_.train.batch_size / world_, world_,
                 balancer_.enabled() ? " to start with, then split by measured rank speed (train.balance)" : "",
                 plan_.steps_per_epoch());
    for (const auto& f : io::remove_stale_temporaries(cfg_.out_dir()))
      spdlog::info("removed {}, left by a writer that was killed", f);
    // A resumed run continues the histories: rows after the checkpoint's step are dropped.
    io::truncate_train_metrics(run_file, step_);
    io::truncate_eval_history(run_file, step_);
    const auto history = io::read_train_metrics(run_file);
    if (!history.empty()) wall_offset = history.back().wall_s;
    io::write_run_config(run_file, cfg_.yaml, world_);
  }
  struct Deferred {
    Deferred() { stop::set_deferred(true); }
    ~Deferred() { stop::set_deferred(false); }
  } deferred;
  using clock = LoopClock;
  auto start = clock::now();  // moved forward by the time of evaluations during training
  auto interval_start = start;
  const auto start_step = step_;
  double loss_sum = 0.0;
  std::int64_t interval_steps = 0, loss_steps = 0;
  StepStats last;
  while (step_ < total) {
    train_step();
    const bool log_now = step_ % cfg_.train.log_every == 0 || step_ == total;
    const bool checkpoint_now = step_ % cfg_.train.checkpoint_every == 0 || step_ == total;
    const bool evaluate_now = evaluate_ && eval_every_ > 0 && step_ % eval_every_ == 0;
    const auto snapshot_every = cfg_.train.phema_snapshot_every;
    // Always at the last step, so that post-hoc EMA can reconstruct the end of training.
    const bool snapshot_now = !power_emas_.empty() &&
                              (snapshot_every > 0 ? step_ % snapshot_every == 0 || step_ == total : checkpoint_now);
    // The host waits for the device only here: between these steps it queues work ahead.
    if (!log_now && !checkpoint_now && !evaluate_now && !snapshot_now) continue;
    bool stopping = false;
    for (const auto& s : read_agreements()) {
      ++interval_steps;
      if (!s.skipped) {
        loss_sum += s.loss;
        ++loss_steps;
      }
      stopping = stopping || s.stop_requested;
      last = s;
    }
    if (log_now || stopping) {
      const auto now = clock::now();
      const double dt = std::chrono::duration<double>(now - interval_start).count();
      // NaN when every step of the interval was skipped: there is no loss to report.
      const double loss = loss_sum / double(loss_steps);
      const double img_s = interval_steps * cfg_.train.batch_size / dt;
      const double elapsed = std::chrono::duration<double>(now - start).count();
      const double eta = elapsed / double(step_ - start_step) * double(total - step_);
      if (rank_ == 0) {
        spdlog::info("step {}/{}  epoch {}  loss {:.4f}  lr {:.2e}  grad_norm {:.3f}  {:.1f} img/s{}  ETA {}", step_,
                     total, epoch(), loss, last.lr, last.grad_norm, img_s,
                     balancer_.enabled() ? "  rows " + balancer_.describe() : "",
                     format_duration(eta));
        // Rows that a failed write left behind go with this one (train.on_write_error: continue).
        unwritten_rows_.push_back({double(step_), loss, last.lr, last.grad_norm, img_s, wall_offset + elapsed});
        try {
          io::append_train_metrics(run_file, unwritten_rows_);
          unwritten_rows_.clear();
        } catch (const Error& e) {
          on_write_error(e, "the metrics of step " + std::to_string(step_) + " are kept in memory for the next write");
        }
      }
      loss_sum = 0.0;
      interval_steps = loss_steps = 0;
      interval_start = now;
    }
    // Before the checkpoint of the same step, which then carries this evaluation in its history.
    if (evaluate_now && !stopping) {
      const auto eval_start = clock::now();
      evaluate_(step_, wall_offset + std::chrono::duration<double>(eval_start - start).count());
      // Training's clocks skip the evaluation.
      const auto spent = clock::now() - eval_start;
      start += spent;
      interval_start += spent;
    }
    if (checkpoint_now || stopping) write_checkpoint();
    if (snapshot_now) write_power_ema_snapshot();
    if (stopping) {
      if (rank_ == 0) {
        const int sig = stop::requested();
        spdlog::info("stopped at step {}/{} on {}: the checkpoint of step {} holds everything", step_, total,
                     sig ? stop::signal_name(sig) : "a signal to another rank", step_);
      }
      return Outcome::Stopped;
    }
  }
  // A signal during the last checkpoint was recorded by some ranks only; they agree here, so that
  // none starts the evaluation that the others skip.
  comm_.set_phase("the end of training");
  auto stop_flag = torch::tensor({stop::requested() != 0 ? 1.0 : 0.0}, torch::kFloat64);
  comm_.allreduce_sum(stop_flag);
  if (stop_flag.item<double>() > 0.0) {
    if (rank_ == 0) {
      const int sig = stop::requested();
      spdlog::info("{} during the last checkpoint: training is complete (step {}), and the evaluation is skipped",
                   sig ? stop::signal_name(sig) : "a signal to another rank", step_);
    }
    return Outcome::Stopped;
  }
  return Outcome::Finished;
}

}  // namespace ddpm::train
