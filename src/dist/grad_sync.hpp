// The reducer: averages gradients over ranks in buckets, overlapping communication with backward.
//
// The parameters' gradients are views of one buffer, end to end in parameter order (grads()), so
// that a bucket is a stretch of it and nothing is copied in or out (DDP's gradient_as_bucket_view).
// Parameters go into buckets in reverse registration order (about the order in which backward
// produces their gradients); the first bucket is small so that communication starts early. A hook
// that runs after autograd has accumulated a parameter's gradient counts it; when a bucket is
// complete, its asynchronous all-reduce starts while backward goes on. Buckets are launched
// strictly in bucket order on every rank, since ranks that launch collectives in different orders
// hang. finish() waits for all buckets and divides the buffer by the world size. With overlap off,
// the same buckets are all-reduced after backward instead.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <vector>

#include "dist/communicator.hpp"

namespace ddpm::dist {

struct GradSyncOptions {
  double bucket_mb = 1.0;
  double first_bucket_mb = 0.25;
  bool overlap = true;
};

class GradSync {
 public:
  GradSync(Communicator& comm, std::vector<torch::Tensor> params, GradSyncOptions options);
  ~GradSync();
  GradSync(const GradSync&) = delete;
  GradSync& operator=(const GradSync&) = delete;

  // Call before each step's first backward: zeroes the gradients (the buffer), and makes any
  // gradient that something else replaced (an optimizer's zero_grad that sets them to none) a view
  // again. `armed` false: the backwards that follow only accumulate (gradient accumulation), until
  // arm() before the last.
  void prepare(bool armed = true);
  void arm() { armed_ = true; }
  // Call after backward: the parameters' gradients are then the averages over ranks.
  void finish();

  // Every parameter's gradient, end to end in parameter order.
  torch::Tensor grads() const { return grads_; }
  std::size_t bucket_count() const { return buckets_.size(); }
  // Seconds spent in finish() waiting for all-reduces, summed since construction.
  double wait_seconds() const { return wait_seconds_; }

 private:
  struct Bucket {
    std::size_t size = 0;  // parameters in it
    torch::Tensor buffer;  // a stretch of grads_
    std::size_t ready = 0;
    std::unique_ptr<Work> work;
  };
  void on_gradient(std::size_t param);
  void launch_ready_buckets();

  Communicator& comm_;
  std::vector<torch::Tensor> params_;
  GradSyncOptions options_;
  torch::Tensor grads_;
  std::vector<torch::Tensor> grad_views_;  // param -> its stretch of grads_
  std::vector<Bucket> buckets_;
  std::vector<std::size_t> bucket_of_;  // param -> bucket
  std::vector<char> arrived_;           // param -> gradient accumulated this step
  std::size_t next_launch_ = 0;
  bool armed_ = false;  // between prepare() and finish(): a backward elsewhere launches nothing
  double wait_seconds_ = 0.0;
  // Autograd holds a parameter's accumulator only while a graph uses it; the hooks live on these.
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators_;
  // The hooks stay on the accumulators after this object is gone; they reach it through a weak
  // reference to this pointer.
  std::shared_ptr<GradSync*> self_;
};

// Whether GradSync may launch all-reduces from gradient hooks during backward (overlap): asked for,
// not with a captured graph (a replay skips the hooks' host work), and on CUDA only with a
// communicator that may be called from autograd's device thread, where CUDA autograd runs the
// hooks (not a funneled MPI). Every trainer, the evaluation classifier's included, asks here.
bool overlap_in_backward(bool asked, bool graphs, const torch::Device& device, const Communicator& comm);

// Copies rank `root`'s parameters and buffers into every rank's module.
void broadcast_module(Communicator& comm, torch::nn::Module& module, int root = 0);

}  // namespace ddpm::dist
