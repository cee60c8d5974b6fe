// The ranks' health: the agreement all-reduce of every step, the skip decision it makes on the
// device, and its reading on the host (skipped steps, the halt, stops, the balancer's times).
#include <spdlog/spdlog.h>

#include "train/trainer.hpp"
#include "util/error.hpp"
#include "util/stop_request.hpp"

namespace ddpm::train {
namespace {

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

Trainer::Verdict Trainer::take_update(const torch::Tensor& agreement) {
  const auto bad = agreement[kNonFinite] > 0.0;
  bad_in_row_device_.add_(1.0).mul_(bad);
  halted_device_.logical_or_(bad_in_row_device_ > double(cfg_.train.max_bad_steps));
  auto take = bad.logical_not().logical_and_(halted_device_.logical_not());
  auto record = torch::stack({take.to(torch::kFloat64), bad_in_row_device_, halted_device_.to(torch::kFloat64)});
  return {std::move(take), std::move(record)};
}

std::vector<StepStats> Trainer::read_agreements() {
  if (pending_.empty()) return {};
  // The host's one wait for the steps' collectives, where the watchdog times it (on a GPU they
  // were only stream dependencies until now).
  comm_.synchronize();
  std::vector<torch::Tensor> rows;
  for (const auto& p : pending_) rows.push_back(torch::cat({p.agreement, p.verdict}));
  const auto read = torch::stack(rows).cpu();
  const auto* v = read.data_ptr<double>();
  const auto width = read.size(1);
  const auto verdict = width - 3;  // [taken, non-finite steps in a row, halted]: take_update's record
  std::vector<StepStats> steps;
  std::vector<double> busy(static_cast<std::size_t>(world_), 0.0);
  std::int64_t halted_at = 0;  // the step whose run of non-finite steps passed train.max_bad_steps
  for (std::size_t i = 0; i < pending_.size(); ++i, v += width) {
    StepStats s;
    s.step = pending_[i].step;
    s.lr = lr_at(s.step - 1);
    s.loss = v[kWeightedLoss];
    s.grad_norm = v[kGradNorm];
    s.stop_requested = v[kStop] > 0.0;
    s.skipped = v[verdict] == 0.0;
    const auto in_row = static_cast<std::int64_t>(v[verdict + 1]);
    if (in_row > 0) count_bad_step(s, in_row);
    if (v[verdict + 2] > 0.0 && halted_at == 0) halted_at = s.step;
    for (int r = 0; r < world_; ++r) busy[static_cast<std::size_t>(r)] += v[kBusy + r] / double(pending_.size());
    steps.push_back(s);
  }
  pending_.clear();
  balancer_.observe(busy);
  if (halted_at != 0) {
    // No update was applied after the last good step: the state is that of step `halted_at` (its
    // run of non-finite steps skipped), whatever steps the device ran on before the host read this.
    const int max_bad = cfg_.train.max_bad_steps;
    const auto last_good = halted_at - max_bad - 1;
    write_checkpoint_of(halted_at);
    throw Error("train.max_bad_steps = " + std::to_string(max_bad) + ": " + std::to_string(max_bad + 1) +
                " steps in a row (up to step " + std::to_string(halted_at) +
                ") had a non-finite loss or gradient norm, so training stops. The checkpoint of step " +
                std::to_string(halted_at) + " holds the weights of step " + std::to_string(last_good) +
                ", the last good one, as those steps' updates were skipped; lower train.lr or train.grad_clip, or "
                "check the data, then continue with --resume auto");
  }
  return steps;
}

void Trainer::count_bad_step(const StepStats& stats, std::int64_t in_row) {
  ++bad_total_;
  if (rank_ == 0)
    spdlog::warn("step {}: non-finite loss or gradient norm (loss {}, gradient norm {}); update skipped on "
                 "every rank ({} in a row, {} in all; train.max_bad_steps = {})",
                 stats.step, stats.loss, stats.grad_norm, in_row, bad_total_, cfg_.train.max_bad_steps);
}

}  // namespace ddpm::train
