// Which examples each training step uses. The global batch of a step is a pure function of
// (seed, step): one permutation per epoch seeded by (seed, epoch), cut into consecutive global
// batches (the tail that does not fill a batch is dropped). Ranks take consecutive slices of it
// (equal ones, or those of train::BatchBalancer), so N ranks together see exactly the examples
// that one rank would. The permutation is drawn on the CPU (the same on any device) and kept where
// the batches are used, so that on a GPU a step's rows are a slice there, with no upload per step.
#pragma once

#include <torch/types.h>

#include <cstdint>

namespace ddpm::data {

class BatchPlan {
 public:
  BatchPlan(std::int64_t dataset_size, std::int64_t global_batch, std::uint64_t seed,
            torch::Device device = torch::kCPU);

  std::int64_t steps_per_epoch() const { return steps_per_epoch_; }
  std::int64_t epoch_of(std::int64_t step) const { return step / steps_per_epoch_; }
  // int64 indices into the data set for rows [begin, end) of the global batch of step `step`
  // (0-based), on the plan's device.
  torch::Tensor rows(std::int64_t step, std::int64_t begin, std::int64_t end);
  // The rows of rank `rank`'s share of the global batch (rank_share, util/share.hpp).
  torch::Tensor indices(std::int64_t step, int rank, int world);

 private:
  std::int64_t size_, batch_, steps_per_epoch_;
  std::uint64_t seed_;
  torch::Device device_;
  std::int64_t cached_epoch_ = -1;
  torch::Tensor permutation_;
};

}  // namespace ddpm::data
