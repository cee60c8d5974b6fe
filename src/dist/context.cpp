#include "dist/context.hpp"

#include <sched.h>
#include <unistd.h>

#include <mpi.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstdio>
#include <thread>

#include "dist/mpi_check.hpp"
#include "dist/mpi_communicator.hpp"
#include "dist/nccl_communicator.hpp"
#include "util/error.hpp"

namespace ddpm::dist {

Context::Context(int* argc, char*** argv) {
  // Started without a launcher (no PMIx or Open MPI rank in the environment), the process is an
  // MPI singleton, for which Open MPI starts a helper daemon (~0.2 s) that a world of one never
  // needs: inspect, report, a single-rank run. A setting the user made is kept.
  if (!std::getenv("PMIX_RANK") && !std::getenv("OMPI_COMM_WORLD_RANK") && !std::getenv("PMI_RANK"))
    setenv("OMPI_MCA_ess_singleton_isolated", "1", 0);
  int provided = 0;
  // Only the main thread calls MPI (CPU autograd runs hooks on the thread that calls backward).
  if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
    throw Error("MPI_Init_thread failed; check the MPI installation (mpirun --version)");
  init_mpi_errors();
  if (provided < MPI_THREAD_FUNNELED)
    throw Error("this MPI library gives thread level " + std::to_string(provided) +
                ", and ddpm_dist needs MPI_THREAD_FUNNELED (" + std::to_string(MPI_THREAD_FUNNELED) +
                "): LibTorch runs threads beside MPI. Use an MPI built with thread support (Debian's Open MPI is)");
  mpi_check(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "MPI_Comm_rank");
  mpi_check(MPI_Comm_size(MPI_COMM_WORLD, &world_), "MPI_Comm_size");
  MPI_Comm local;
  mpi_check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local),
            "MPI_Comm_split_type");
  mpi_check(MPI_Comm_rank(local, &local_rank_), "MPI_Comm_rank");
  mpi_check(MPI_Comm_size(local, &local_size_), "MPI_Comm_size");
  mpi_check(MPI_Comm_free(&local), "MPI_Comm_free");
}

void init_mpi_errors() { mpi_check(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler"); }

int cuda_device_index(int local_rank, int visible) { return visible > 0 ? local_rank % visible : 0; }

Context::~Context() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

int Context::configure(const std::string& device, int threads) {
  const bool cuda = torch::cuda::is_available();
  if (device == "cuda" && !cuda)
    throw Error("run.device is 'cuda' but no CUDA device is visible to this LibTorch (" TORCH_VERSION
                "); set run.device: cpu (or auto)");
  const int visible = cuda ? static_cast<int>(torch::cuda::device_count()) : 0;
  device_ = (device != "cpu" && cuda)
                ? torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(cuda_device_index(local_rank_, visible)))
                : torch::Device(torch::kCPU);
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // A launcher that binds this rank to some cores (mpirun --map-by slot:PE=N, srun --cpus-per-task)
  // has already divided the host; otherwise the ranks on this host share its cores.
  cpu_set_t allowed;
  const int bound = sched_getaffinity(0, sizeof allowed, &allowed) == 0 ? CPU_COUNT(&allowed) : cores;
  const int n = threads > 0 ? threads : bound < cores ? bound : std::max(1, cores / local_size_);
  torch::set_num_threads(n);
  if (threads == 0 && local_size_ > cores && rank_ == 0)
    spdlog::warn("{} ranks on a host with {} cores: 1 intra-op thread each, and the ranks share cores", local_size_,
                 cores);
  return n;
}

BackendChoice Context::choose_backend(const std::string& requested) const {
  // The most ranks on a host; as negated maxima, the fewest GPUs a rank sees and whether every
  // rank's model is on CUDA.
  const bool cuda = device_.is_cuda();
  int shares[3] = {local_size_, -(cuda ? static_cast<int>(torch::cuda::device_count()) : 0), cuda ? -1 : 0};
  mpi_check(MPI_Allreduce(MPI_IN_PLACE, shares, 3, MPI_INT, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce of the layout");
  Layout layout;
  layout.world = world_;
  layout.ranks_per_host = shares[0];
  layout.devices_per_host = -shares[1];
  layout.cuda = shares[2] == -1;
  layout.nccl_built = nccl_compiled();
  return dist::choose_backend(requested, layout);
}

std::unique_ptr<Communicator> Context::make_communicator(const BackendChoice& choice) const {
  // The model's device, decided once in configure(): NCCL must bind the same GPU.
  if (choice.backend == "nccl") return make_nccl_communicator(device_.index());
  if (choice.backend == "self") return std::make_unique<SelfCommunicator>();
  return std::make_unique<MpiCommunicator>();
}

std::string Context::placement() const {
  constexpr int kLength = 256;
  char host[kLength] = "";
  gethostname(host, kLength - 1);
  std::array<char, kLength> mine{};
  std::snprintf(mine.data(), kLength, "%s|%d|%s", host, local_rank_, device_.str().c_str());
  std::vector<char> all(rank_ == 0 ? static_cast<std::size_t>(kLength) * world_ : 0);
  mpi_check(MPI_Gather(mine.data(), kLength, MPI_CHAR, all.data(), kLength, MPI_CHAR, 0, MPI_COMM_WORLD), "MPI_Gather");
  if (rank_ != 0) return "";
  std::vector<std::pair<std::string, std::string>> hosts;  // in the order of their first rank
  for (int r = 0; r < world_; ++r) {
    const std::string entry(all.data() + static_cast<std::size_t>(r) * kLength);
    const auto a = entry.find('|'), b = entry.find('|', a + 1);
    const auto name = entry.substr(0, a);
    const auto text = std::to_string(r) + " (local " + entry.substr(a + 1, b - a - 1) + ", " + entry.substr(b + 1) + ")";
    auto it = std::find_if(hosts.begin(), hosts.end(), [&](const auto& h) { return h.first == name; });
    if (it == hosts.end()) hosts.emplace_back(name, text);
    else it->second += ", " + text;
  }
  std::string out;
  for (const auto& [name, ranks] : hosts) out += (out.empty() ? "" : "; ") + name + ": " + ranks;
  return out;
}

void Context::abort(const std::string& what, int code) const {
  // Ranks other than 0 carry their rank in the log pattern already.
  if (rank_ == 0 && world_ > 1)
    spdlog::error("[rank 0] {}", what);
  else
    spdlog::error("{}", what);
  spdlog::default_logger()->flush();
  if (world_ > 1) MPI_Abort(MPI_COMM_WORLD, code);
  MPI_Finalize();
  std::exit(code);
}

}  // namespace ddpm::dist
