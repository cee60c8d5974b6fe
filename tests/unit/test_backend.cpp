// run.backend from the job's layout: auto picks NCCL only where it is built, the model is on CUDA,
// more than one rank runs and no host has more ranks than GPUs; an explicit nccl that cannot work
// is refused with the fix.
#include <gtest/gtest.h>

#include "dist/backend.hpp"
#include "dist/grad_sync.hpp"
#include "util/error.hpp"

using namespace ddpm;

namespace {

dist::Layout gpus(int world, int ranks_per_host, int devices_per_host, bool nccl_built = true) {
  return {world, ranks_per_host, devices_per_host, true, nccl_built};
}

std::string refusal(const std::string& requested, const dist::Layout& l) {
  try {
    dist::choose_backend(requested, l);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Backend, AutoGivesNcclForOneGpuPerRank) {
  const auto c = dist::choose_backend("auto", gpus(8, 4, 4));
  EXPECT_EQ(c.backend, "nccl");
  EXPECT_NE(c.reason.find("8 ranks"), std::string::npos) << c.reason;
}

TEST(Backend, AutoFallsBackToMpiWhenRanksShareAGpu) {
  const auto c = dist::choose_backend("auto", gpus(2, 2, 1));
  EXPECT_EQ(c.backend, "mpi");
  EXPECT_NE(c.reason.find("2 ranks on a host that has 1 GPU(s)"), std::string::npos) << c.reason;
}

TEST(Backend, AutoFallsBackToMpiWithoutNccl) {
  const auto c = dist::choose_backend("auto", gpus(2, 2, 2, /*nccl_built=*/false));
  EXPECT_EQ(c.backend, "mpi");
  EXPECT_NE(c.reason.find("no NCCL"), std::string::npos) << c.reason;
}

TEST(Backend, OneRankUsesNoCommunicator) {
  EXPECT_EQ(dist::choose_backend("auto", gpus(1, 1, 1)).backend, "self");
  EXPECT_EQ(dist::choose_backend("mpi", gpus(1, 1, 1)).backend, "self");
  EXPECT_EQ(dist::choose_backend("auto", {1, 1, 0, false, false}).backend, "self");
  // Asked for by name, NCCL runs even alone (the device check's one-rank NCCL stage).
  EXPECT_EQ(dist::choose_backend("nccl", gpus(1, 1, 1)).backend, "nccl");
}

TEST(Backend, CpuRanksUseMpi) {
  EXPECT_EQ(dist::choose_backend("auto", {2, 2, 0, false, true}).backend, "mpi");
  EXPECT_EQ(dist::choose_backend("mpi", gpus(4, 4, 4)).backend, "mpi");
}

TEST(Backend, AnExplicitNcclThatCannotWorkNamesTheFix) {
  for (const auto& [layout, says] :
       std::vector<std::pair<dist::Layout, std::string>>{{gpus(2, 2, 2, false), "this build has no NCCL"},
                                                         {{2, 2, 0, false, true}, "needs the model on a CUDA GPU"},
                                                         {gpus(4, 4, 2), "4 ranks on a host that has 2 GPU(s)"}}) {
    const auto message = refusal("nccl", layout);
    EXPECT_NE(message.find(says), std::string::npos) << message;
    EXPECT_NE(message.find("set run.backend: mpi"), std::string::npos) << message;
  }
}

namespace {
// MPI as ddpm_dist initialises it: callable from the main thread only.
class Funneled final : public dist::Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 2; }
  std::string name() const override { return "funneled"; }
  void allreduce_sum(torch::Tensor&) override {}
  std::unique_ptr<dist::Work> allreduce_sum_async(torch::Tensor&) override { return nullptr; }
  bool launches_from_any_thread() const override { return false; }
  void broadcast(torch::Tensor&, int) override {}
  torch::Tensor gatherv(const torch::Tensor& t, int) override { return t; }
  void barrier() override {}
};
}  // namespace

// CUDA autograd runs gradient hooks on its device thread: a funneled MPI may not be called there,
// so on CUDA with MPI (ranks sharing a GPU) the buckets go after backward, for the diffusion model
// and the evaluation classifier alike (both train through train::Trainer, which asks this).
TEST(Backend, NoGradientHooksOnCudaWithAFunneledCommunicator) {
  Funneled mpi;
  dist::SelfCommunicator any_thread;
  const torch::Device cuda(torch::kCUDA, 0), cpu(torch::kCPU);
  EXPECT_FALSE(dist::overlap_in_backward(true, false, cuda, mpi));
  EXPECT_TRUE(dist::overlap_in_backward(true, false, cpu, mpi));
  EXPECT_TRUE(dist::overlap_in_backward(true, false, cuda, any_thread));
  EXPECT_FALSE(dist::overlap_in_backward(true, true, cuda, any_thread));  // graphs replay no hooks
  EXPECT_FALSE(dist::overlap_in_backward(false, false, cpu, any_thread));
}
