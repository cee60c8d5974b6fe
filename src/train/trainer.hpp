// The training loop: Adam (train/adam.hpp) with linear warm-up, gradient clipping, EMA, progress logging and
// checkpoints, for any train::Task (the diffusion U-Net: train::DiffusionTask). Each step's global
// batch (examples, timesteps, noise) is a function of (seed, step) alone; this rank computes only
// its slice of it, whose size train::BatchBalancer sets from the ranks' measured speed (equal
// slices with train.balance: false or on CUDA).
#pragma once

#include <torch/torch.h>

#include <functional>

#include "config/config.hpp"
#include "data/batch_plan.hpp"
#include "data/mnist.hpp"
#include "dist/communicator.hpp"
#include "dist/grad_sync.hpp"
#include "io/checkpoint.hpp"
#include "io/run_file.hpp"
#include "model/cuda_graph.hpp"
#include "model/ema.hpp"
#include "model/power_ema.hpp"
#include "train/adam.hpp"
#include "train/batch_balance.hpp"
#include "train/task.hpp"
#include "util/error.hpp"

namespace ddpm::train {

struct StepStats {
  std::int64_t step = 0;   // the step count after it (the figure the logs and checkpoints use)
  double loss = 0.0;       // mean over the global batch (every rank has it)
  double grad_norm = 0.0;  // before clipping
  double lr = 0.0;
  // A rank saw a non-finite loss, or the gradient norm is not finite, or training was halted by an
  // earlier run of such steps (train.max_bad_steps): the update was skipped on every rank (weights,
  // EMA and Adam state are those of the step before).
  bool skipped = false;
  bool stop_requested = false;  // a stop signal reached some rank during the step (util/stop_request.hpp)
};

class Trainer {
 public:
  // Every rank builds the same model from the seed; rank 0's weights are broadcast anyway so that
  // replicas start identical whatever the initialisation does.
  Trainer(const config::Config& cfg, std::unique_ptr<Task> task, torch::Device device, dist::Communicator& comm);
  // The diffusion U-Net of `cfg` on `train_set` (train::DiffusionTask).
  Trainer(const config::Config& cfg, const data::Dataset& train_set, torch::Device device, dist::Communicator& comm);

  enum class Outcome { Finished, Stopped };
  // Trains from the current step up to cfg.train.steps, logging and checkpointing on the way.
  // A stop request (util/stop_request.hpp) on any rank ends it early, at the next reading of the
  // agreements (below) and a checkpoint of that step, with Outcome::Stopped.
  Outcome run();
  // One optimizer step on this rank's slice of global step `step()`; advances step(). The ranks
  // agree, in one all-reduce, on whether to skip the update (decided and applied on the device)
  // and whether to stop; the host reads nothing, so that on a GPU it runs ahead of the device.
  void train_step();
  // The agreements of the steps since the last call, in order, read with one wait for the device.
  // Every rank must call it after the same step (run(): at the steps that log, checkpoint or
  // evaluate, so a stop lags its signal by at most the least of those periods). Counts
  // and warns of skipped steps; the balancer sees the busy times averaged over the steps. When
  // more than train.max_bad_steps steps in a row were non-finite, the device has applied no update
  // since the last good step: writes the checkpoint of the step that passed the limit (the state
  // after it, which later steps have not changed) and throws.
  std::vector<StepStats> read_agreements();

  // Called by run() on every rank after each step that is a multiple of `every` (and not stopping),
  // with the step and the training wall time so far; the time it takes is left out of the
  // throughput, the ETA and the wall time of the history. app/ wires eval::DuringTraining here.
  using Evaluation = std::function<void(std::int64_t step, double train_wall_s)>;
  void set_evaluation(std::int64_t every, Evaluation evaluate);

  double lr_at(std::int64_t step) const;
  // Steps done (what logs, checkpoints, Adam's count and the EMA's updates count), and the epoch of
  // the last of them (0 before any).
  std::int64_t step() const { return step_; }
  std::int64_t epoch() const { return epoch_after(step_); }
  std::int64_t epoch_after(std::int64_t steps) const { return steps > 0 ? plan_.epoch_of(steps - 1) : 0; }
  Task& task() { return *task_; }
  torch::nn::Module& model() { return task_->model(); }
  torch::nn::Module& ema_model() { return task_->ema_model(); }
  // Seconds this rank spent waiting for gradient all-reduces, summed over all steps so far.
  double comm_wait_seconds() const { return grad_sync_->wait_seconds(); }
  // Rank 0 writes a checkpoint of the current step (and prunes old ones); the others wait.
  void write_checkpoint();
  // Continues from a checkpoint: weights, EMA, optimizer state and step. A damaged file stops.
  void resume(const std::string& path);
  // `--resume auto`: continues from the newest checkpoint of the run that verifies, past damaged
  // ones (each named in a warning); false when there is none.
  bool resume_newest();
  // The checkpoint this run continued from ("" for a fresh start).
  const std::string& resumed_from() const { return resumed_from_; }
  const Adam& optimizer() const { return *optimizer_; }
  bool bf16() const { return bf16_; }
  bool cuda_graphs() const { return graphs_; }
  const BatchBalancer& balancer() const { return balancer_; }
  // Tests steer the split through it (observe() with chosen times).
  BatchBalancer& balancer() { return balancer_; }

  // Adam's state as views of its buffers, named as the model's parameters: what a checkpoint
  // writes, and what reading one fills in.
  io::AdamState adam_state() const;
  // The power-function EMAs of post-hoc EMA (train.phema_sigma_rels), the same way.
  std::vector<io::PowerEmaState> power_ema_states() const;
  const std::vector<model::PowerEma>& power_emas() const { return power_emas_; }

 private:
  void continue_from(const std::string& path, const io::CheckpointInfo& info);
  // Clips the averaged gradients to train.grad_clip (global L2 norm); returns the norm before, as a
  // scalar tensor where the gradients are (nothing is read).
  torch::Tensor clip_gradients();
  config::KeyFilter defining_keys() const;

  const config::Config& cfg_;
  torch::Device device_;
  dist::Communicator& comm_;
  int rank_, world_;
  std::unique_ptr<Task> task_;
  std::unique_ptr<model::Ema> ema_;
  std::vector<model::PowerEma> power_emas_;  // post-hoc EMA's averages, each a buffer laid out as values_
  torch::Tensor values_;  // the parameters, end to end (util/flat_tensors.hpp)
  std::unique_ptr<Adam> optimizer_;
  std::unique_ptr<dist::GradSync> grad_sync_;
  data::BatchPlan plan_;
  BatchBalancer balancer_;
  double update_seconds_ = 0.0;  // the last optimizer and EMA update, for the balancer
  std::int64_t step_ = 0;
  std::string resumed_from_;
  bool bf16_ = false;  // train.precision resolved for the device
  bool graphs_ = false;  // train.cuda_graphs resolved for the device
  // With graphs: the step's inputs and loss live in fixed tensors that the captured forward and
  // backward read and write; the parameters' gradients are the graph's own tensors.
  struct StepGraph {
    std::vector<torch::Tensor> inputs;
    torch::Tensor loss;
    std::unique_ptr<model::CapturedGraph> graph;
  };
  std::unique_ptr<StepGraph> step_graph_;
  std::vector<io::MetricsRow> unwritten_rows_;  // rank 0: metrics not yet in run.h5
  std::int64_t eval_every_ = 0;
  Evaluation evaluate_;
  std::int64_t bad_total_ = 0;  // rank 0's count of non-finite steps, for the warnings

  // What the ranks agree on after each step, in one all-reduce: a float64 vector where the model
  // is, the same on every rank, laid out as `Slot` in trainer.cpp. `my_loss` and
  // `my_grad_norm` are scalar tensors where the model is; nothing is read.
  torch::Tensor agree(const torch::Tensor& my_loss, const torch::Tensor& my_grad_norm, double share,
                      double busy_seconds);
  // The one skip decision, made on the device from the step's agreement and the run of
  // non-finite steps so far (which it advances): `take`, a bool scalar, says whether the update is
  // applied; `record` ([taken, non-finite steps in a row, halted], float64) is what the host reads
  // of it later, instead of deciding again.
  struct Verdict {
    torch::Tensor take, record;
  };
  Verdict take_update(const torch::Tensor& agreement);
  struct Pending {  // a step whose agreement and verdict the host has not read yet
    std::int64_t step;
    torch::Tensor agreement, verdict;
  };
  std::vector<Pending> pending_;
  // On the device: non-finite steps in a row, and whether more than train.max_bad_steps were.
  torch::Tensor bad_in_row_device_, halted_device_;
  // Forward and backward of this rank's slice; the gradients, of the loss times `grad_scale`, are
  // left in the parameters. Returns the unscaled loss. `poison` makes it NaN (fault injection).
  torch::Tensor forward_backward(const std::vector<torch::Tensor>& inputs, double grad_scale, bool poison);
  // A checkpoint or run.h5 write failed (rank 0): throws with `e` and what is on disk, or with
  // train.on_write_error: continue, warns and says what happens instead (`if_continuing`).
  void on_write_error(const Error& e, const std::string& if_continuing);
  // Counts and warns of a step with a non-finite loss or gradient norm, the `in_row`th in a row.
  void count_bad_step(const StepStats& stats, std::int64_t in_row);
  // The checkpoint of `step`, which the model, the EMA and Adam's state must be (rank 0 writes).
  void write_checkpoint_of(std::int64_t step);
  // Rank 0 writes <run>/phema/snapshot_<step>.h5 (train.on_write_error applies).
  void write_power_ema_snapshot();
  // The update counts read with a checkpoint (the values were read into the averages' views).
  void restore_power_emas(const std::vector<io::PowerEmaState>& read);
};

}  // namespace ddpm::train
