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

torch::Tensor Trainer::take_update(const torch::Tensor& agreement) {
  const auto bad = agreement[kNonFinite] > 0.0;
  bad_in_row_device_.add_(1.0).mul_(bad);
  halted_device_.logical_or_(bad_in_row_device_ > double(cfg_.train.max_bad_steps));
  return bad.logical_not().logical_and_(halted_device_.logical_not());
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

void Trainer::count_bad_step(const StepStats& stats) {
  ++bad_in_row_;
  ++bad_total_;
  if (rank_ == 0)
    spdlog::warn("step {}: non-finite loss or gradient norm (loss {}, gradient norm {}); update skipped on "
                 "every rank ({} in a row, {} in all; train.max_bad_steps = {})",
                 stats.step, stats.loss, stats.grad_norm, bad_in_row_, bad_total_, cfg_.train.max_bad_steps);
}

}  // namespace ddpm::train
