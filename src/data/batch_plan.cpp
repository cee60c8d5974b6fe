#include "data/batch_plan.hpp"

#include <torch/torch.h>

#include "util/error.hpp"
#include "util/rng.hpp"
#include "util/share.hpp"

namespace ddpm::data {

BatchPlan::BatchPlan(std::int64_t dataset_size, std::int64_t global_batch, std::uint64_t seed, torch::Device device)
    : size_(dataset_size), batch_(global_batch), steps_per_epoch_(dataset_size / global_batch), seed_(seed),
      device_(device) {
  if (steps_per_epoch_ < 1)
    throw Error("train.batch_size = " + std::to_string(global_batch) + " is larger than the data set (" +
                std::to_string(dataset_size) + " examples); use a smaller batch");
}

torch::Tensor BatchPlan::indices(std::int64_t step, int rank, int world) {
  const auto [begin, end] = rank_share(batch_, rank, world);
  return rows(step, begin, end);
}

torch::Tensor BatchPlan::rows(std::int64_t step, std::int64_t begin, std::int64_t end) {
  const std::int64_t epoch = epoch_of(step);
  if (epoch != cached_epoch_) {
    auto gen = Stream(seed_, Purpose::EpochPermutation).generator({static_cast<std::uint64_t>(epoch)});
    permutation_ = torch::randperm(size_, gen, torch::kLong).to(device_);
    cached_epoch_ = epoch;
  }
  const std::int64_t offset = (step % steps_per_epoch_) * batch_;
  return permutation_.slice(0, offset + begin, offset + end);
}

}  // namespace ddpm::data
