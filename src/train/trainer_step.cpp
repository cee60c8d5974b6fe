// The step: inputs -> forward/backward (in micro-batches) -> gradient sync -> clip -> agreement ->
// update -> EMA.
#include <chrono>
#include <limits>

#include "model/precision.hpp"
#include "train/trainer.hpp"
#include "util/fault.hpp"

namespace ddpm::train {

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
      // The slice is fixed with graphs: they run only on CUDA, where the balancer is never on
      // (the constructor's balancer_ takes !device.is_cuda()).
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
  const auto verdict = take_update(agreement);
  optimizer_->step(verdict.take);
  ema_->update(model, verdict.take);
  for (auto& average : power_emas_) average.update(verdict.take);
  update_seconds_ = std::chrono::duration<double>(clock::now() - update_start).count();
  ++step_;
  pending_.push_back({step_, agreement, verdict.record});
}

torch::Tensor Trainer::clip_gradients() {
  auto grads = grad_sync_->grads();
  return clip_grad_norm(grads, cfg_.train.grad_clip);
}

}  // namespace ddpm::train
