// Evaluation across 2 ranks gives the figures of 1 rank.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "config/config.hpp"
#include "dist/mpi_communicator.hpp"
#include "eval/metrics.hpp"

using namespace ddpm;

TEST(Eval, TwoRanksGiveTheFidOfOneRank) {
  dist::MpiCommunicator world;
  dist::SelfCommunicator self;
  const auto cfg = config::parse("data: {dir: " + std::string(DDPM_SOURCE_DIR) + "/data/mnist}\n", "eval-test");
  // An untrained classifier is a fixed feature map: what matters is that the reduction is exact.
  torch::manual_seed(5);
  model::Classifier net;
  net->eval();
  const std::int64_t n = 300;
  torch::manual_seed(6);
  const auto images = torch::rand({n, 1, 28, 28}) * 2 - 1;
  const auto train = data::load_dataset(cfg.data.dir, data::Split::Train);
  const auto test = data::load_dataset(cfg.data.dir, data::Split::Test);
  const auto ref2 = eval::reference_stats(world, net, cfg, train, test, n, torch::kCPU);
  const auto ref1 = eval::reference_stats(self, net, cfg, train, test, n, torch::kCPU);
  // Unequal shares that start on batch boundaries, as sample_range gives them.
  const auto half = world.rank() == 0 ? images.slice(0, 0, 100) : images.slice(0, 100, n);
  const auto two = eval::evaluate(world, net, half, ref2, 50, torch::kCPU);
  const auto one = eval::evaluate(self, net, images, ref1, 50, torch::kCPU);
  if (world.rank() == 0) std::cout << "FID 2 ranks " << two.fid << ", 1 rank " << one.fid << "\n";
  EXPECT_NEAR(two.fid, one.fid, 1e-9 * one.fid);
  // The floor of this untrained feature map is ~0.006, a small difference of traces ~100x larger:
  // its error is relative to the traces, not to itself.
  const double scale = std::max(ref1.fid_floor, ref1.sigma.trace().item<double>());
  EXPECT_NEAR(ref2.fid_floor, ref1.fid_floor, 1e-9 * scale);
  EXPECT_NEAR(two.mean_confidence, one.mean_confidence, 1e-12);
  EXPECT_EQ(two.class_histogram, one.class_histogram);
  std::int64_t total = 0;
  for (auto c : two.class_histogram) total += c;
  EXPECT_EQ(total, n);
  if (world.rank() == 0) {
    EXPECT_TRUE(torch::equal(two.gen_features, one.gen_features));
    EXPECT_TRUE(torch::equal(two.labels_pred, one.labels_pred));
  }
}
