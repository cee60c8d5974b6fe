// Two ranks on one GPU (run.backend: mpi stages CUDA tensors through pinned host memory): the GPU
// path with several ranks, on a machine with one device. Skipped where no GPU is visible.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "config/config.hpp"
#include "data/mnist.hpp"
#include "dist/mpi_communicator.hpp"
#include "train/trainer.hpp"

using namespace ddpm;

namespace {
#define REQUIRE_CUDA() \
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device visible"

const data::Dataset& synthetic() {
  static const data::Dataset d = [] {
    torch::manual_seed(3);
    return data::Dataset{torch::randint(0, 256, {256, 28, 28}, torch::kUInt8), torch::zeros({256}, torch::kUInt8)};
  }();
  return d;
}

config::Config cfg_with(bool graphs) {
  return config::parse(std::string("run: {name: cuda2, seed: 4, out_dir: /tmp/ddpm_cuda_ranks}\n"
                                   "model: {base_channels: 8, channel_mult: [1, 2], num_res_blocks: 1, "
                                   "attention_resolutions: [14], groups: 4, dropout: 0.1}\n"
                                   "train: {batch_size: 16, lr: 1.0e-3, warmup_steps: 2, cuda_graphs: ") +
                           (graphs ? "true" : "false") + "}\n",
                       "cuda-ranks");
}

torch::Tensor flat_weights(train::Trainer& t) {
  std::vector<torch::Tensor> parts;
  for (const auto& p : t.model().parameters()) parts.push_back(p.detach().flatten().cpu().to(torch::kFloat64));
  return torch::cat(parts);
}
}  // namespace

TEST(CudaRanks, MpiMovesCudaTensorsThroughTheHost) {
  REQUIRE_CUDA();
  dist::MpiCommunicator world;
  auto t = torch::full({1000}, double(world.rank() + 1), torch::TensorOptions().device(torch::kCUDA));
  world.allreduce_sum(t);
  EXPECT_TRUE(t.is_cuda());
  EXPECT_TRUE(torch::allclose(t.cpu(), torch::full({1000}, 3.0)));
  auto b = torch::full({10}, double(world.rank()), torch::TensorOptions().device(torch::kCUDA));
  world.broadcast(b, 1);
  EXPECT_TRUE(torch::allclose(b.cpu(), torch::full({10}, 1.0)));
}

// Equivalence with one rank on the device, with dropout, with and without CUDA graphs; rounding as
// in OneStepEquivalence (kernels chosen by batch size), checked at the same 1e-4.
TEST(CudaRanks, TwoRanksOnOneGpuTrainLikeOneRank) {
  REQUIRE_CUDA();
  for (bool graphs : {false, true}) {
    dist::MpiCommunicator world;
    dist::SelfCommunicator self;
    const auto cfg = cfg_with(graphs);
    const torch::Device cuda(torch::kCUDA, 0);
    train::Trainer two(cfg, synthetic(), cuda, world);
    train::Trainer one(cfg, synthetic(), cuda, self);
    for (int i = 0; i < 4; ++i) {
      two.train_step();
      one.train_step();
    }
    const auto a = flat_weights(two), b = flat_weights(one);
    const double diff = ((a - b).norm() / b.norm()).item<double>();
    if (world.rank() == 0) std::cout << "graphs " << graphs << ": 2 ranks vs 1 on one GPU: " << diff << "\n";
    EXPECT_LT(diff, 1e-4) << "graphs " << graphs;
  }
}
