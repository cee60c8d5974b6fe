#pragma once

#include <mpi.h>

#include <memory>
#include <vector>

#include "dist/communicator.hpp"

namespace ddpm::dist {

// Tensors over an MPI communicator: CPU tensors directly, CUDA tensors through a pinned host copy
// (slower than NCCL; it lets several ranks share one GPU). Non-blocking all-reduces are
// MPI_Iallreduce; Open MPI advances them only inside MPI calls, so progress() tests them.
class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(MPI_Comm comm = MPI_COMM_WORLD);
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return "mpi"; }
  void allreduce_sum(torch::Tensor& t) override;
  std::unique_ptr<Work> allreduce_sum_async(torch::Tensor& t) override;
  void progress() override;
  bool launches_from_any_thread() const override { return false; }
  void broadcast(torch::Tensor& t, int root) override;
  torch::Tensor gatherv(const torch::Tensor& t, int root) override;
  void barrier() override;
  // Requests this communicator still tracks for progress() (tests: it must not grow step by step).
  std::size_t in_flight() const { return in_flight_.size(); }

 private:
  void forget_completed();

  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
  std::vector<std::shared_ptr<MPI_Request>> in_flight_;
};

}  // namespace ddpm::dist
