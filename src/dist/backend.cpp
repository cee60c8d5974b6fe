#include "dist/backend.hpp"

#include "util/error.hpp"

namespace ddpm::dist {
namespace {

std::string sharing(const Layout& l) {
  return std::to_string(l.ranks_per_host) + " ranks on a host that has " + std::to_string(l.devices_per_host) +
         " GPU(s)";
}

}  // namespace

BackendChoice choose_backend(const std::string& requested, const Layout& l) {
  if (requested == "nccl") {
    if (!l.nccl_built)
      throw Error("run.backend: nccl was asked for, but this build has no NCCL (nccl.h and the CUDA runtime were "
                  "not found at configure time); set run.backend: mpi (or auto), or rebuild with CUDA and NCCL "
                  "installed");
    if (!l.cuda)
      throw Error("run.backend: nccl needs the model on a CUDA GPU, and this rank has none (run.device or no GPU "
                  "visible); set run.backend: mpi (or auto) to train through MPI");
    if (l.ranks_per_host > l.devices_per_host)
      throw Error("run.backend: nccl: " + sharing(l) +
                  ", and NCCL needs a GPU of its own for each rank; set run.backend: mpi (or auto), which "
                  "lets ranks share a GPU, or start at most " + std::to_string(l.devices_per_host) +
                  " rank(s) per host");
    return {"nccl", "asked for (run.backend: nccl)"};
  }
  if (l.world == 1) return {"self", "one rank: nothing to communicate"};
  if (requested == "mpi") return {"mpi", "asked for (run.backend: mpi)"};
  if (!l.cuda) return {"mpi", "the model is on the CPU"};
  if (!l.nccl_built) return {"mpi", "this build has no NCCL (CUDA tensors are staged through host memory)"};
  if (l.ranks_per_host > l.devices_per_host)
    return {"mpi", sharing(l) + ", and NCCL needs a GPU per rank (CUDA tensors are staged through host memory)"};
  return {"nccl", "a GPU per rank, " + std::to_string(l.world) + " ranks"};
}

}  // namespace ddpm::dist
