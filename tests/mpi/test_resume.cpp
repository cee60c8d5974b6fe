// Resuming on 2 ranks from a checkpoint written by 1 rank continues the same training.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "config/config.hpp"
#include "data/mnist.hpp"
#include "dist/mpi_communicator.hpp"
#include "io/checkpoint.hpp"
#include "train/trainer.hpp"

using namespace ddpm;

class Resume : public ::testing::TestWithParam<bool> {};

// Dropout 0.1 (configs/mnist.yaml's): a row's masks must be the same on 1 and 2 ranks and under
// any split of the batch, so the continuation on 2 ranks follows the straight run on 1.
TEST_P(Resume, TwoRanksContinueACheckpointOfOneRank) {
  dist::MpiCommunicator world;
  dist::SelfCommunicator self;
  const std::string dir = "/tmp/ddpm_mpi_resume";
  const auto cfg = config::parse("run: {name: r, seed: 8, out_dir: " + dir +
                                     "}\n"
                                     "model: {base_channels: 8, channel_mult: [1, 2], num_res_blocks: 1, "
                                     "attention_resolutions: [], groups: 4, dropout: 0.1}\n"
                                     "train: {batch_size: 16, lr: 1.0e-3, warmup_steps: 2, balance: " +
                                     std::string(GetParam() ? "true" : "false") + "}\n",
                                 "resume");
  static const auto mnist =
      data::load_dataset(std::string(DDPM_SOURCE_DIR) + "/data/mnist", data::Split::Train);
  const int K = 3;
  // Rank 0 alone trains K steps and writes the checkpoint; a 1-rank run of 2K steps is the reference.
  if (world.rank() == 0) {
    std::filesystem::remove_all(dir);
    train::Trainer first(cfg, mnist, torch::kCPU, self);
    for (int i = 0; i < K; ++i) first.train_step();
    first.write_checkpoint();
  }
  world.barrier();
  train::Trainer resumed(cfg, mnist, torch::kCPU, world);
  resumed.resume(io::checkpoint_path(dir, K));
  for (int i = 0; i < K; ++i) resumed.train_step();

  train::Trainer straight(cfg, mnist, torch::kCPU, self);
  for (int i = 0; i < 2 * K; ++i) straight.train_step();
  auto flat = [](train::Trainer& t) {
    std::vector<torch::Tensor> parts;
    for (const auto& p : t.model().parameters()) parts.push_back(p.detach().flatten());
    return torch::cat(parts);
  };
  const auto a = flat(resumed), b = flat(straight);
  const double diff = ((a - b).norm() / b.norm()).item<double>();
  if (world.rank() == 0) std::cout << "relative difference after resuming on 2 ranks: " << diff << "\n";
  EXPECT_LT(diff, 1e-5);
  world.barrier();
  if (world.rank() == 0) std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Balance, Resume, ::testing::Bool());
