// The reducer: averages gradients over ranks in buckets, overlapping communication with backward.
//
// Parameters go into buckets in reverse registration order (about the order in which backward
// produces their gradients); the first bucket is small so that communication starts early. A hook
// on each parameter copies its gradient into its bucket's flat buffer; when a bucket is full, its
// asynchronous all-reduce starts while backward goes on. Buckets are launched strictly in bucket
// order on every rank, since ranks that launch collectives in different orders hang. finish() waits
// for all buckets, divides by the world size and writes the averages back into the gradients.
// With overlap off, the same buckets are all-reduced after backward instead.
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

  // Call before each backward.
  void prepare();
  // Call after backward: the parameters' gradients are then the averages over ranks.
  void finish();

  std::size_t bucket_count() const { return buckets_.size(); }
  // Seconds spent in finish() waiting for all-reduces, summed since construction.
  double wait_seconds() const { return wait_seconds_; }

 private:
  struct Bucket {
    std::vector<std::size_t> params;    // indices into params_
    std::vector<std::int64_t> offsets;  // element offsets in buffer
    torch::Tensor buffer;
    std::size_t ready = 0;
    std::unique_ptr<Work> work;
  };
  void on_gradient(std::size_t param, const torch::Tensor& grad);
  void launch_ready_buckets();

  Communicator& comm_;
  std::vector<torch::Tensor> params_;
  GradSyncOptions options_;
  std::vector<Bucket> buckets_;
  std::vector<std::size_t> bucket_of_;  // param -> bucket
  std::vector<std::size_t> slot_of_;    // param -> position in its bucket
  std::vector<char> arrived_;           // param -> gradient copied this step
  std::size_t next_launch_ = 0;
  double wait_seconds_ = 0.0;
  // The hooks stay on the parameters after this object is gone; they reach it through a weak
  // reference to this pointer.
  std::shared_ptr<GradSync*> self_;
};

// Copies rank `root`'s parameters and buffers into every rank's module.
void broadcast_module(Communicator& comm, torch::nn::Module& module, int root = 0);

}  // namespace ddpm::dist
