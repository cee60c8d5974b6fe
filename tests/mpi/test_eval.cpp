// Evaluation across 2 ranks gives the figures of 1 rank.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "config/config.hpp"
#include "dist/mpi_communicator.hpp"
#include "eval/metrics.hpp"

using namespace ddpm;

TEST(Eval, TwoRanksGiveTheFidOfOneRank) {
  dist::MpiCommunicator world;
  dist::SelfCommunicator self;
  // The features are computed anew (compute_real_features): no cache file is read or written.
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
  // A subset keeps the classification short; the reduction is the same at any size.
  const data::Dataset train_part{train.images.slice(0, 0, 6000), train.labels.slice(0, 0, 6000)};
  const data::Dataset test_part{test.images.slice(0, 0, 2000), test.labels.slice(0, 0, 2000)};
  const auto real2 = eval::compute_real_features(world, net, cfg, train_part, test_part, torch::kCPU);
  const auto real1 = eval::compute_real_features(self, net, cfg, train_part, test_part, torch::kCPU);
  const auto ref2 = eval::reference_stats(world, real2, cfg, n);
  const auto ref1 = eval::reference_stats(self, real1, cfg, n);
  // Unequal shares that start on batch boundaries, as batch_share gives them.
  const auto half = world.rank() == 0 ? images.slice(0, 0, 100) : images.slice(0, 100, n);
  const auto two = eval::evaluate(world, net, half, ref2, 50, torch::kCPU);
  const auto one = eval::evaluate(self, net, images, ref1, 50, torch::kCPU);
  // The error bound. Each rank computes the features of its share of the reference images in
  // float32, in batches that differ from one rank's; matrix-product kernels (AMX, AVX-512) are not
  // bitwise independent of the batch, so a feature may differ by a few units in the last place,
  // u = 2^-24 relative. The sums are float64 and exact enough. A covariance is quadratic in the
  // features (2u per rounding, a few roundings: 8u), and an FID is four terms (|mu1 - mu2|^2, the
  // two traces, the cross term), each at most the traces in size: |dFID| <= 4 x 8u x scale with
  // scale = the traces. A wrong reduction (a rank missing, counted twice, a wrong divisor) changes
  // FID by a fraction of itself, over 10^5 times more than this bound.
  const double u = std::ldexp(1.0, -24);
  const double scale = ref1.sigma.trace().item<double>() + one.figures.fid.value;
  if (world.rank() == 0)
    std::cout << "FID 2 ranks " << two.figures.fid.value << ", 1 rank " << one.figures.fid.value << "; floor "
              << ref2.floor.fid.value << " vs " << ref1.floor.fid.value << "; bound " << 32 * u * scale << "\n";
  EXPECT_NEAR(two.figures.fid.value, one.figures.fid.value, 32 * u * scale);
  EXPECT_NEAR(ref2.floor.fid.value, ref1.floor.fid.value, 32 * u * scale);
  // Equal features give equal shares; a vector at the edge of a radius may flip: 1 / n each.
  EXPECT_NEAR(two.figures.precision, one.figures.precision, 1.5 / n);
  EXPECT_NEAR(two.figures.recall, one.figures.recall, 1.5 / n);
  EXPECT_NEAR(two.mean_confidence, one.mean_confidence, 1e-12);
  EXPECT_EQ(two.class_histogram, one.class_histogram);
  std::int64_t total = 0;
  for (auto c : two.class_histogram) total += c;
  EXPECT_EQ(total, n);
  if (world.rank() == 0) {
    // KID is a difference of kernel means, so its error scales with the kernel, not with KID: a
    // relative error e in the features moves k(x, y) = (x.y / d + 1)^3 (x.y >= 0 for ReLU features)
    // by at most 6e of itself, and each of its four means (xx, yy, twice xy) is at most the largest
    // k(x, x) (Cauchy-Schwarz). With e = 8u as above: |dKID| <= 6 x 8u x 4 x max k(x, x).
    auto largest_kernel = [](const torch::Tensor& f) {
      const auto x = f.to(torch::kFloat64);
      return (x.pow(2).sum(1) / double(x.size(1)) + 1.0).pow(3).max().item<double>();
    };
    const double k_max = std::max(largest_kernel(one.gen_features), largest_kernel(ref1.real));
    EXPECT_NEAR(two.figures.kid.value, one.figures.kid.value, 192 * u * k_max);
    EXPECT_TRUE(torch::equal(two.gen_features, one.gen_features));
    EXPECT_TRUE(torch::equal(two.labels_pred, one.labels_pred));
  }
}
