// CUDA tensors over NCCL. Built wherever nccl.h and the CUDA runtime are found (DDPM_HAVE_NCCL),
// even with a CPU-only LibTorch; it refuses at run time, with the fix, where no GPU is present.
#pragma once

#include <memory>

#include "dist/communicator.hpp"

namespace ddpm::dist {

// True when this build contains the NCCL backend.
bool nccl_compiled();

// Creates the NCCL communicator over MPI_COMM_WORLD (rank 0's ncclUniqueId is broadcast with
// MPI_Bcast) on CUDA device `device` (the index of the model's device: dist::Context decides it).
// Throws ddpm::Error when NCCL was not compiled in or no GPU is
// visible, naming `run.backend: mpi` as the fix.
std::unique_ptr<Communicator> make_nccl_communicator(int device);

}  // namespace ddpm::dist
