#include <gtest/gtest.h>
#include <torch/torch.h>

#include "eval/fid.hpp"
#include "io/png.hpp"

#include <fstream>

using namespace ddpm;

namespace {
eval::FeatureStats stats_of(const torch::Tensor& x) {
  eval::FeatureStats s(x.size(1));
  s.add(x);
  return s;
}
// A random symmetric positive-definite matrix.
torch::Tensor spd(int d, double scale) {
  auto a = torch::randn({d, d}, torch::kFloat64);
  return a.mm(a.t()) * scale / d + torch::eye(d, torch::kFloat64) * 0.1;
}
}  // namespace

TEST(FeatureStats, MeanAndCovarianceMatchDirectFormulas) {
  torch::manual_seed(1);
  auto x = torch::randn({500, 6}, torch::kFloat64) * 3 + 2;
  auto s = stats_of(x.slice(0, 0, 200));
  s.add(x.slice(0, 200, 500));  // adding in parts is the same as all at once
  EXPECT_TRUE(torch::allclose(s.mean(), x.mean(0), 1e-12, 1e-12));
  auto centered = x - x.mean(0);
  EXPECT_TRUE(torch::allclose(s.covariance(), centered.t().mm(centered) / 499.0, 1e-10, 1e-10));
}

TEST(Frechet, ASetWithItselfIsZero) {
  torch::manual_seed(2);
  auto x = torch::randn({1000, 32}, torch::kFloat64);
  auto s = stats_of(x);
  EXPECT_NEAR(eval::frechet_distance(s.mean(), s.covariance(), s.mean(), s.covariance()), 0.0, 1e-8);
}

TEST(Frechet, MatchesClosedFormForKnownGaussians) {
  torch::manual_seed(3);
  const int d = 8;
  auto mu1 = torch::randn({d}, torch::kFloat64), mu2 = torch::randn({d}, torch::kFloat64);
  // Diagonal covariances: tr(S1 + S2 - 2 sqrt(S1 S2)) = sum (sqrt(a) - sqrt(b))^2.
  auto a = torch::rand({d}, torch::kFloat64) + 0.5, b = torch::rand({d}, torch::kFloat64) + 0.5;
  const double expected =
      (mu1 - mu2).pow(2).sum().item<double>() + (a.sqrt() - b.sqrt()).pow(2).sum().item<double>();
  EXPECT_NEAR(eval::frechet_distance(mu1, torch::diag(a), mu2, torch::diag(b)), expected, 1e-10);
  // Same covariance, different means: only the mean term remains.
  auto s = spd(d, 2.0);
  EXPECT_NEAR(eval::frechet_distance(mu1, s, mu2, s), (mu1 - mu2).pow(2).sum().item<double>(), 1e-8);
  // Scaled covariance: S2 = c^2 S1 gives tr(S1) (1 - c)^2.
  EXPECT_NEAR(eval::frechet_distance(mu1, s, mu1, s * 9.0), s.trace().item<double>() * 4.0, 1e-8);
}

// Covariances that do not commute, where tr sqrt(S1 S2) differs from tr(sqrt(S1) sqrt(S2)). For
// 2 x 2 matrices, S1 S2 has positive eigenvalues l1, l2 (it is similar to S1^1/2 S2 S1^1/2), and
// (sqrt l1 + sqrt l2)^2 = tr(S1 S2) + 2 sqrt(det S1 det S2): here tr(S1 S2) = 8, det S1 = det S2 = 3,
// so tr sqrt(S1 S2) = sqrt(14), and FID = |mu1 - mu2|^2 + 4 + 4 - 2 sqrt(14).
TEST(Frechet, MatchesTheClosedFormForNonCommutingCovariances) {
  const auto s1 = torch::tensor({2.0, 1.0, 1.0, 2.0}, torch::kFloat64).view({2, 2});
  const auto s2 = torch::tensor({1.0, 0.0, 0.0, 3.0}, torch::kFloat64).view({2, 2});
  ASSERT_FALSE(torch::allclose(s1.mm(s2), s2.mm(s1)));
  const auto mu1 = torch::tensor({0.5, -1.0}, torch::kFloat64), mu2 = torch::tensor({1.5, 1.0}, torch::kFloat64);
  const double expected = 1.0 + 4.0 + 8.0 - 2.0 * std::sqrt(14.0);
  EXPECT_NEAR(eval::frechet_distance(mu1, s1, mu2, s2), expected, 1e-12);
  // The formula with tr(sqrt(S1) sqrt(S2)) gives another value: the case tells them apart.
  // sqrt([[2,1],[1,2]]) = [[a,b],[b,a]] with a = (sqrt3 + 1)/2, b = (sqrt3 - 1)/2; sqrt(S2) = diag(1, sqrt3).
  const double a = (std::sqrt(3.0) + 1) / 2;
  const double wrong = 1.0 + 4.0 + 8.0 - 2.0 * (a + a * std::sqrt(3.0));
  EXPECT_GT(std::abs(wrong - expected), 1e-2);
}

TEST(Frechet, IsSymmetricAndFiniteForSingularCovariances) {
  torch::manual_seed(4);
  // 20 points in 64 dimensions: covariances of rank 19.
  auto x = torch::randn({20, 64}, torch::kFloat64), y = torch::randn({20, 64}, torch::kFloat64) + 0.5;
  auto sx = stats_of(x), sy = stats_of(y);
  const double a = eval::frechet_distance(sx.mean(), sx.covariance(), sy.mean(), sy.covariance());
  const double b = eval::frechet_distance(sy.mean(), sy.covariance(), sx.mean(), sx.covariance());
  EXPECT_TRUE(std::isfinite(a));
  EXPECT_GT(a, 0.0);
  EXPECT_NEAR(a, b, 1e-8 * a);
}

TEST(Png, GridHasTheExpectedSizeAndDecodes) {
  auto images = torch::full({23, 28, 28}, 200, torch::kUInt8);
  images[22][27][27] = 7;  // the last pixel of the last image
  auto grid = io::make_grid(images, 10, /*scale=*/1, /*pad=*/2);
  EXPECT_EQ(grid.sizes(), (std::vector<int64_t>{3 * 30 + 2, 10 * 30 + 2}));
  EXPECT_EQ(grid[2][2].item<int>(), 200);
  EXPECT_EQ(grid[0][0].item<int>(), io::kBorderGrey);
  // Enlarged 3x (nearest neighbour) with a one-pixel border: 10 x 85 + 1 wide, each source pixel a
  // 3 x 3 block.
  const auto big = io::make_grid(images, 10);
  EXPECT_EQ(big.sizes(), (std::vector<int64_t>{3 * 85 + 1, 10 * 85 + 1}));
  const std::int64_t r0 = 1 + 2 * 85, c0 = 1 + 2 * 85;  // image 22: row 2, column 2
  for (std::int64_t dy = 0; dy < 3; ++dy)
    for (std::int64_t dx = 0; dx < 3; ++dx) {
      EXPECT_EQ(big[r0 + 81 + dy][c0 + 81 + dx].item<int>(), 7);
      EXPECT_EQ(big[r0 + 78 + dy][c0 + 81 + dx].item<int>(), 200);
    }
  EXPECT_EQ(big[r0 - 1][c0].item<int>(), io::kBorderGrey);
  EXPECT_EQ(big[r0 + 84][c0].item<int>(), io::kBorderGrey);
  const std::string path = "/tmp/ddpm_grid_test.png";
  io::write_png(path, grid);
  // The PNG header says 302 x 92, 8-bit grayscale.
  std::ifstream in(path, std::ios::binary);
  std::vector<unsigned char> head(26);
  in.read(reinterpret_cast<char*>(head.data()), 26);
  EXPECT_EQ(head[1], 'P');
  EXPECT_EQ((head[16] << 24) | (head[17] << 16) | (head[18] << 8) | head[19], 302);
  EXPECT_EQ((head[20] << 24) | (head[21] << 16) | (head[22] << 8) | head[23], 92);
  EXPECT_EQ(head[24], 8);
  EXPECT_EQ(head[25], 0);
  std::remove(path.c_str());
}
