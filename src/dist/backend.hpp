// Which communicator a job's layout calls for (run.backend), decided from facts every rank shares,
// so that all ranks choose alike.
#pragma once

#include <string>

namespace ddpm::dist {

struct Layout {
  int world = 1;
  int ranks_per_host = 1;    // the most ranks any one host runs
  int devices_per_host = 0;  // the fewest CUDA devices any rank sees (0 without CUDA)
  bool cuda = false;         // every rank's model is on a CUDA device (run.device resolved)
  bool nccl_built = false;   // this build contains the NCCL backend
};

struct BackendChoice {
  std::string backend;  // "self" (a world of one rank: nothing to communicate), "mpi" or "nccl"
  std::string reason;   // for the start-up log
};

// `requested` is run.backend: auto | mpi | nccl. auto gives NCCL only where it works and pays:
// built, the model on CUDA, more than one rank, and no host with more ranks than GPUs (NCCL refuses
// two ranks on one device); MPI otherwise. An explicit nccl that cannot work throws ddpm::Error
// naming run.backend: mpi.
BackendChoice choose_backend(const std::string& requested, const Layout& layout);

}  // namespace ddpm::dist
