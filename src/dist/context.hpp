// The process's place in the job: MPI start-up and shutdown, rank, world size, local rank,
// the device and the intra-op threads of this rank, and the communicator the config asks for.
#pragma once

#include <torch/types.h>

#include <memory>
#include <string>

#include "dist/backend.hpp"
#include "dist/communicator.hpp"

namespace ddpm::dist {

// The CUDA device of a rank: its local rank modulo the devices visible to it, so that a launcher
// that shows each rank one GPU (srun --gpus-per-task=1) gives every rank its device 0. The model
// and the NCCL communicator both take this one index.
int cuda_device_index(int local_rank, int visible);

// Makes failed MPI calls on MPI_COMM_WORLD (and communicators made from it) return an error code,
// which dist::mpi_check turns into an exception naming the call, instead of ending the job inside
// MPI with a message that names neither.
void init_mpi_errors();

class Context {
 public:
  Context(int* argc, char*** argv);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  int rank() const { return rank_; }
  int world_size() const { return world_; }
  int local_rank() const { return local_rank_; }
  int local_size() const { return local_size_; }

  // Picks the device (`auto|cpu|cuda`; cuda:cuda_device_index) and sets intra-op threads
  // (0 = cores on this host / ranks on this host, at least 1). Returns the thread count.
  int configure(const std::string& device, int threads);
  torch::Device device() const { return device_; }
  // run.backend (`auto|mpi|nccl`) for this job's layout (dist/backend.hpp). Collective: the ranks
  // agree on the layout (the most ranks on a host, the fewest GPUs a rank sees) and so choose alike.
  BackendChoice choose_backend(const std::string& requested) const;
  std::unique_ptr<Communicator> make_communicator(const BackendChoice& choice) const;
  // Where the ranks run, for the log: "vm: 0 (local 0, cpu), 1 (local 1, cpu)", one group per
  // host. Collective (after configure); the text on rank 0, "" elsewhere.
  std::string placement() const;

  // Logs `what` with this rank and ends the whole job (MPI_Abort), so that no rank is left
  // waiting in a collective.
  [[noreturn]] void abort(const std::string& what, int code) const;

 private:
  int rank_ = 0, world_ = 1, local_rank_ = 0, local_size_ = 1;
  torch::Device device_{torch::kCPU};
};

}  // namespace ddpm::dist
