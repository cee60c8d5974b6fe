#include "train/trainer.hpp"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>

#include "io/checkpoint.hpp"
#include "io/h5.hpp"
#include "io/run_file.hpp"
#include "model/precision.hpp"
#include "train/diffusion_task.hpp"
#include "util/error.hpp"
#include "util/fault.hpp"
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

// The agreement's slots. Every slot is a sum over ranks; a figure of one rank has a slot that the
// others fill with zero, so that every rank receives the same figures exactly.
enum Slot : std::int64_t {
  kNonFinite,     // ranks whose loss or gradient norm is not finite
  kWeightedLoss,  // sum of rows_r / B x slice loss = the global batch's mean loss
  kGradNorm,      // rank 0's gradient norm (that of the averaged gradients, as every rank's)
  kStop,          // ranks that received a stop signal
  kBusy,          // kBusy + r: rank r's busy seconds
};

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
  if (graphs_ && balancer_.enabled())
    throw Error("train.cuda_graphs replays one captured slice of the batch, but the balancer would move it: set "
                "train.balance: false");
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
  grad_sync_ = std::make_unique<dist::GradSync>(
      comm_, model.parameters(),
      // Gradient hooks do host work that a graph replay skips: with graphs, buckets go after backward.
      // On CUDA the hooks run on autograd's device thread, where a funneled MPI may not be called.
      dist::GradSyncOptions{cfg.train.bucket_mb, cfg.train.bucket_mb / 4,
                            cfg.train.overlap && !graphs_ && (device.is_cpu() || comm.launches_from_any_thread())});
  optimizer_ = std::make_unique<Adam>(values_, grad_sync_->grads(),
                                      AdamSettings{cfg.train.lr, 0.9, 0.999, 1e-8, cfg.train.weight_decay});
  bad_in_row_device_ = torch::zeros({}, values_.options().dtype(torch::kFloat64));
  halted_device_ = torch::zeros({}, values_.options().dtype(torch::kBool));
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

Trainer::Trainer(const config::Config& cfg, const data::Dataset& train_set, torch::Device device,
                 dist::Communicator& comm)
    : Trainer(cfg, std::make_unique<DiffusionTask>(cfg, train_set, device), device, comm) {}

void Trainer::resume(const std::string& path) {
  auto adam = adam_state();
  const auto info = io::read_checkpoint(path, model(), ema_model(), &adam, &cfg_, defining_keys());
  optimizer_->set_steps(adam.steps);
  continue_from(path, info);
}

bool Trainer::resume_newest() {
  std::vector<std::string> skipped;
  auto adam = adam_state();
  const auto found =
      io::read_newest_checkpoint(cfg_.out_dir(), model(), ema_model(), &adam, &skipped, &cfg_, defining_keys());
  if (found) optimizer_->set_steps(adam.steps);
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

torch::Tensor Trainer::agree(const torch::Tensor& my_loss, const torch::Tensor& my_grad_norm, double share,
                            double busy_seconds) {
  // The slots from the loss and the norm are computed where they are; the host's (stop, busy time)
  // join them there.
  torch::NoGradGuard no_grad;
  const auto loss = my_loss.detach().to(torch::kFloat64).reshape({1});
  const auto norm = my_grad_norm.to(torch::kFloat64).reshape({1});
  // Each rank judges only its own figures; the decision is the sum, the same on every rank.
  const auto non_finite = (torch::isfinite(loss) & torch::isfinite(norm)).logical_not().to(torch::kFloat64);
  auto host = torch::zeros({kBusy + world_ - kStop}, torch::kFloat64);
  host[0] = stop::requested() != 0 ? 1.0 : 0.0;
  host[kBusy - kStop + rank_] = busy_seconds;
  // From pinned memory the upload does not wait for the device.
  const auto host_slots = device_.is_cuda() ? host.pin_memory().to(device_, /*non_blocking=*/true) : host;
  auto reduced = torch::cat({non_finite, loss * share, rank_ == 0 ? norm : torch::zeros_like(norm), host_slots});
  comm_.allreduce_sum(reduced);
  return reduced;
}

torch::Tensor Trainer::take_update(const torch::Tensor& agreement) {
  const auto bad = agreement[kNonFinite] > 0.0;
  bad_in_row_device_.add_(1.0).mul_(bad);
  halted_device_.logical_or_(bad_in_row_device_ > double(cfg_.train.max_bad_steps));
  return bad.logical_not().logical_and_(halted_device_.logical_not());
}

torch::Tensor Trainer::forward_backward(const std::vector<torch::Tensor>& inputs, double grad_scale, bool poison) {
  torch::Tensor loss;
  {
    // Forward in autocast, backward outside it (autograd replays each op in its forward dtype).
    model::AutocastScope autocast(device_, bf16_);
    loss = task_->loss(inputs);
  }
  if (poison) loss = loss * std::numeric_limits<double>::quiet_NaN();
  (grad_scale == 1.0 ? loss : loss * grad_scale).backward();
  return loss;
}

void Trainer::train_step() {
  using clock = std::chrono::steady_clock;
  const auto step_start = clock::now();
  const double wait_before = grad_sync_->wait_seconds();
  auto& model = task_->model();
  model.train();
  const std::int64_t B = cfg_.train.batch_size;
  const auto [begin, end] = balancer_.slice(rank_);
  const auto inputs_of = [&](std::int64_t first, std::int64_t last) {
    return task_->inputs(step_, plan_.rows(step_, first, last), first, last);
  };
  // Each rank's gradient is of its slice mean; weighted by the slice's share of the batch (times
  // the world size, which GradSync's average divides by), the average is the global batch mean.
  const double share = double(end - begin) / double(B);
  // Passes of train.micro_batch rows, each weighted by its own share: their gradients add up to
  // the slice's. Draws and dropout are keyed by global row, so they are those of one pass.
  const std::int64_t micro = cfg_.train.micro_batch > 0 ? std::min(cfg_.train.micro_batch, end - begin) : end - begin;

  optimizer_->set_lr(lr_at(step_));

  comm_.set_phase("training step " + std::to_string(step_));
  fault::at(fault::Point::TrainStep, step_, rank_);
  grad_sync_->prepare(/*armed=*/micro == end - begin);
  const auto compute_start = clock::now();
  torch::Tensor loss;
  if (graphs_) {
    const auto inputs = inputs_of(begin, end);
    if (!step_graph_) {
      // Backward adds into the gradient buffer, which the graph zeroes first: every replay (and
      // every warm-up run before the capture) starts from zero.
      step_graph_ = std::make_unique<StepGraph>();
      auto& g = *step_graph_;
      for (const auto& in : inputs) g.inputs.push_back(in.defined() ? in.clone() : in);
      // The slice is fixed with graphs (the balancer is off on CUDA, checked at construction).
      g.graph = std::make_unique<model::CapturedGraph>(device_, [this, &g, scale = share * world_] {
        grad_sync_->grads().zero_();
        g.loss = forward_backward(g.inputs, scale, false);
      });
    }
    auto& g = *step_graph_;
    for (std::size_t i = 0; i < inputs.size(); ++i)
      if (inputs[i].defined()) g.inputs[i].copy_(inputs[i]);
    g.graph->replay();
    // The injected fault poisons the loss only: enough for every rank to skip the update.
    loss = fault::nan_loss(step_, rank_) ? g.loss * std::numeric_limits<double>::quiet_NaN() : g.loss;
  } else {
    const bool poison = fault::nan_loss(step_, rank_);
    for (std::int64_t first = begin; first < end; first += micro) {
      const std::int64_t last = std::min(end, first + micro);
      if (last == end) grad_sync_->arm();
      const auto part = forward_backward(inputs_of(first, last), double(last - first) / double(B) * world_, poison);
      // The slice's mean loss: one pass's own, or the passes' weighted by their rows.
      const auto weighted = part.detach() * (double(last - first) / double(end - begin));
      loss = micro == end - begin ? part : first == begin ? weighted : loss + weighted;
    }
  }
  fault::slow_down(step_, rank_, std::chrono::duration<double>(clock::now() - compute_start).count());
  grad_sync_->finish();
  auto grad_norm = clip_gradients();
  if (fault::poisoned_grad_norm(step_, rank_))
    grad_norm = torch::full_like(grad_norm, std::numeric_limits<double>::infinity());
  // This rank's busy time: the step so far without the wait for the others' gradients, plus the
  // previous step's update (which follows this all-reduce, so it is reported a step late). The
  // work that does not grow with the rows is in it too: a slower core takes longer over it, and
  // the balancer then gives that rank fewer rows until the busy times are equal.
  const double busy = std::chrono::duration<double>(clock::now() - step_start).count() -
                      (grad_sync_->wait_seconds() - wait_before) + update_seconds_;
  const auto agreement = agree(loss, grad_norm, share, busy);
  const auto update_start = clock::now();
  const auto take = take_update(agreement);
  optimizer_->step(take);
  ema_->update(model, take);
  update_seconds_ = std::chrono::duration<double>(clock::now() - update_start).count();
  ++step_;
  pending_.push_back({step_, agreement});
}

std::vector<StepStats> Trainer::read_agreements() {
  if (pending_.empty()) return {};
  std::vector<torch::Tensor> rows;
  for (const auto& p : pending_) rows.push_back(p.agreement);
  const auto read = torch::stack(rows).cpu();
  const auto* v = read.data_ptr<double>();
  const auto width = read.size(1);
  std::vector<StepStats> steps;
  std::vector<double> busy(static_cast<std::size_t>(world_), 0.0);
  for (std::size_t i = 0; i < pending_.size(); ++i, v += width) {
    StepStats s;
    s.step = pending_[i].step;
    s.lr = lr_at(s.step - 1);
    s.loss = v[kWeightedLoss];
    s.grad_norm = v[kGradNorm];
    s.stop_requested = v[kStop] > 0.0;
    // The device's decision (take_update), replayed from the same figures.
    if (v[kNonFinite] > 0.0) {
      count_bad_step(s);
      if (bad_in_row_ > cfg_.train.max_bad_steps && halted_at_ == 0) halted_at_ = s.step;
    } else {
      bad_in_row_ = 0;
    }
    s.skipped = v[kNonFinite] > 0.0 || halted_at_ != 0;
    for (int r = 0; r < world_; ++r) busy[static_cast<std::size_t>(r)] += v[kBusy + r] / double(pending_.size());
    steps.push_back(s);
  }
  pending_.clear();
  balancer_.observe(busy);
  if (halted_at_ != 0) {
    const int max_bad = cfg_.train.max_bad_steps;
    write_checkpoint();
    throw Error("train.max_bad_steps = " + std::to_string(max_bad) + ": " + std::to_string(max_bad + 1) +
                " steps in a row (up to step " + std::to_string(halted_at_) +
                ") had a non-finite loss or gradient norm, so training stops. The checkpoint of step " +
                std::to_string(step_) + " holds the weights of the last good step (" +
                std::to_string(halted_at_ - max_bad - 1) + ")" +
                (step_ > halted_at_ ? ", as no update was applied after it; it was written at the next reading of the "
                                      "steps' agreements (at the steps that log, checkpoint or evaluate)"
                                    : "") +
                "; lower train.lr or train.grad_clip, or check the data, then continue with --resume auto");
  }
  return steps;
}

torch::Tensor Trainer::clip_gradients() {
  auto grads = grad_sync_->grads();
  return clip_grad_norm(grads, cfg_.train.grad_clip);
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
  using clock = std::chrono::steady_clock;
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
    // The host waits for the device only here: between these steps it queues work ahead.
    if (!log_now && !checkpoint_now && !evaluate_now) continue;
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
                     total, plan_.epoch_of(step_ - 1), loss, last.lr, last.grad_norm, img_s,
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
    if (checkpoint_now || stopping) write_checkpoint();
    if (evaluate_now && !stopping) {
      const auto eval_start = clock::now();
      evaluate_(step_, wall_offset + std::chrono::duration<double>(eval_start - start).count());
      // Training's clocks skip the evaluation.
      const auto spent = clock::now() - eval_start;
      start += spent;
      interval_start += spent;
    }
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

void Trainer::count_bad_step(const StepStats& stats) {
  ++bad_in_row_;
  ++bad_total_;
  if (rank_ == 0)
    spdlog::warn("step {}: non-finite loss or gradient norm (loss {}, gradient norm {}); update skipped on "
                 "every rank ({} in a row, {} in all; train.max_bad_steps = {})",
                 stats.step, stats.loss, stats.grad_norm, bad_in_row_, bad_total_, cfg_.train.max_bad_steps);
}

void Trainer::write_checkpoint() {
  // Rank 0 writes while the others wait in the barrier.
  if (rank_ == 0) {
    const auto path = io::checkpoint_path(cfg_.out_dir(), step_);
    io::CheckpointInfo info;
    info.step = step_;
    info.epoch = plan_.epoch_of(step_);
    info.ema_updates = ema_->updates();
    info.world_size = world_;
    info.config_yaml = cfg_.yaml;
    try {
      const auto adam = adam_state();
      io::write_checkpoint(path, model(), ema_model(), &adam, info);
      io::prune_checkpoints(cfg_.out_dir(), cfg_.train.keep_checkpoints);
      spdlog::info("checkpoint written: {}", path);
    } catch (const Error& e) {
      on_write_error(e, "training goes on; the next checkpoint is tried at its step");
    }
  }
  // Untimed: a slow disk on rank 0 is not a hung rank.
  comm_.set_phase("the checkpoint of step " + std::to_string(step_), false);
  comm_.barrier();
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
