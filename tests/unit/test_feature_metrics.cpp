// The evaluation's measures (eval/feature_metrics.hpp) against closed forms and independent
// computations, on Gaussian feature sets whose true distances are known.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "eval/feature_metrics.hpp"
#include "eval/fid.hpp"

using namespace ddpm;

namespace {
// n draws of N(mu, L L^T) in float64.
torch::Tensor gaussian(std::int64_t n, const torch::Tensor& mu, const torch::Tensor& chol, std::uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  return torch::randn({n, mu.size(0)}, gen, torch::kFloat64).mm(chol.t()) + mu;
}
torch::Tensor skewed_chol(std::int64_t d) {
  // A covariance that is not a multiple of the identity (so that a wrong square root shows).
  auto l = torch::eye(d, torch::kFloat64) * torch::linspace(0.5, 2.0, d, torch::kFloat64);
  l.index_put_({1, 0}, 0.7);
  return l;
}
}  // namespace

TEST(Kid, MatchesTheUStatisticComputedPairByPair) {
  const auto x = gaussian(12, torch::zeros({3}, torch::kFloat64), torch::eye(3, torch::kFloat64), 1);
  const auto y = gaussian(9, torch::ones({3}, torch::kFloat64) * 0.3, torch::eye(3, torch::kFloat64), 2);
  auto k = [](const torch::Tensor& a, const torch::Tensor& b) {
    return std::pow(a.dot(b).item<double>() / 3.0 + 1.0, 3);
  };
  double xx = 0, yy = 0, xy = 0;
  for (int i = 0; i < 12; ++i)
    for (int j = 0; j < 12; ++j)
      if (i != j) xx += k(x[i], x[j]);
  for (int i = 0; i < 9; ++i)
    for (int j = 0; j < 9; ++j)
      if (i != j) yy += k(y[i], y[j]);
  for (int i = 0; i < 12; ++i)
    for (int j = 0; j < 9; ++j) xy += k(x[i], y[j]);
  const double expected = xx / (12 * 11) + yy / (9 * 8) - 2 * xy / (12 * 9);
  // Sums of about 200 terms of size ~10 in float64: rounding far below 1e-10.
  EXPECT_NEAR(eval::kernel_inception_distance(x, y, 2).value, expected, 1e-10);
}

TEST(Kid, TwoSamplesOfOneGaussianGiveZeroWithinTheErrorAndShiftedOnesDoNot) {
  const std::int64_t d = 16;
  const auto chol = skewed_chol(d);
  const auto mu = torch::zeros({d}, torch::kFloat64);
  const auto a = gaussian(1000, mu, chol, 3), b = gaussian(1000, mu, chol, 4);
  const auto same = eval::kernel_inception_distance(a, b, 10);
  EXPECT_GT(same.se, 0.0);
  EXPECT_LT(std::abs(same.value), 3 * same.se) << same.value << " +- " << same.se;
  const auto shifted = eval::kernel_inception_distance(gaussian(1000, mu + 0.5, chol, 5), b, 10);
  EXPECT_GT(shifted.value, 5 * shifted.se) << shifted.value << " +- " << shifted.se;
}

TEST(Kid, UnbiasedInNWhereFidIsNot) {
  // The same pair of Gaussians measured with 100 and with 2000 vectors: KID's means agree, FID's
  // differ by its bias, which grows like 1/N.
  const std::int64_t d = 8;
  const auto chol = skewed_chol(d);
  const auto mu = torch::zeros({d}, torch::kFloat64);
  const auto ref = gaussian(4000, mu, chol, 6);
  const auto ref_mu = ref.mean(0), ref_sigma = (ref - ref_mu).t().mm(ref - ref_mu) / 3999.0;
  double kid_small = 0, fid_small = 0;
  const int repeats = 20;
  for (int r = 0; r < repeats; ++r) {
    const auto g = gaussian(100, mu + 0.2, chol, 100 + r);
    kid_small += eval::kernel_inception_distance(g, ref.slice(0, 100 * r, 100 * (r + 1)), 5).value / repeats;
    fid_small += eval::fid_with_error(g, ref_mu, ref_sigma, 0, 0).value / repeats;
  }
  const auto big = gaussian(2000, mu + 0.2, chol, 7);
  const auto kid_big = eval::kernel_inception_distance(big, ref.slice(0, 2000, 4000), 10);
  const double fid_big = eval::fid_with_error(big, ref_mu, ref_sigma, 0, 0).value;
  // The mean of 20 estimates at N = 100 has about the error of one at N = 2000.
  EXPECT_NEAR(kid_small, kid_big.value, 4 * kid_big.se) << kid_small << " against " << kid_big.value;
  EXPECT_GT(fid_small, 1.5 * fid_big) << fid_small << " against " << fid_big;
}

TEST(Fid, BootstrapErrorMatchesTheSpreadOverIndependentDraws) {
  const std::int64_t d = 8, n = 500;
  const auto chol = skewed_chol(d);
  const auto mu = torch::zeros({d}, torch::kFloat64);
  const auto ref_sigma = chol.mm(chol.t());
  std::vector<double> fids;
  for (int r = 0; r < 40; ++r) fids.push_back(eval::fid_with_error(gaussian(n, mu + 0.3, chol, 200 + r), mu, ref_sigma, 0, 0).value);
  const double spread = eval::mean_and_spread(fids).se;
  const auto one = eval::fid_with_error(gaussian(n, mu + 0.3, chol, 300), mu, ref_sigma, 100, 1);
  // Both are estimates of one standard deviation, from 40 and 100 values (about 11% and 7%
  // relative error each): a factor 1.5 either way is over 3 of their combined errors.
  EXPECT_GT(one.se, spread / 1.5) << one.se << " against " << spread;
  EXPECT_LT(one.se, spread * 1.5) << one.se << " against " << spread;
}

TEST(Fid, ExtrapolationToInfiniteNRecoversTheTrueDistance) {
  // 48 dimensions at N = 1000: FID's bias (about d / N per unit of variance) is then several of its
  // standard errors, so that removing it shows.
  const std::int64_t d = 48;
  const auto chol = skewed_chol(d);
  const auto mu = torch::zeros({d}, torch::kFloat64);
  const auto gen_chol = chol * 1.1;
  // The reference is exact, so the true FID is the closed form of the two Gaussians.
  const auto ref_sigma = chol.mm(chol.t());
  const double truth = eval::frechet_distance(mu + 0.05, gen_chol.mm(gen_chol.t()), mu, ref_sigma);
  const auto g = gaussian(1000, mu + 0.05, gen_chol, 8);
  const auto plain = eval::fid_with_error(g, mu, ref_sigma, 100, 2);
  const auto inf = eval::fid_infinity(g, mu, ref_sigma, plain.se, 3);
  std::cout << "true " << truth << ", FID at 1000 " << plain.value << " +- " << plain.se << ", extrapolated "
            << inf.value << " +- " << inf.se << "\n";
  EXPECT_NEAR(inf.value, truth, 3 * inf.se);
  EXPECT_GT(plain.value - truth, 3 * plain.se);
}

TEST(PrecisionRecall, ASetAgainstItselfIsOneAndFarApartSetsAreZero) {
  const auto chol = skewed_chol(4);
  const auto a = gaussian(300, torch::zeros({4}, torch::kFloat64), chol, 9);
  const auto self = eval::precision_recall(a, a, 3);
  EXPECT_EQ(self.precision, 1.0);
  EXPECT_EQ(self.recall, 1.0);
  const auto far = eval::precision_recall(a, a + 100.0, 3);
  EXPECT_EQ(far.precision, 0.0);
  EXPECT_EQ(far.recall, 0.0);
}

TEST(PrecisionRecall, ACollapsedModelHasPrecisionWithoutRecall) {
  // Samples from one corner of the real distribution: they lie on its manifold, but most real
  // vectors are far from any of them.
  const auto chol = torch::eye(2, torch::kFloat64);
  const auto real = gaussian(1000, torch::zeros({2}, torch::kFloat64), chol, 10);
  const auto gen = gaussian(1000, torch::zeros({2}, torch::kFloat64), chol * 0.1, 11);
  const auto pr = eval::precision_recall(real, gen, 3);
  EXPECT_GT(pr.precision, 0.95);
  EXPECT_LT(pr.recall, 0.2);
}

TEST(Memorisation, CopiesOfTrainingVectorsCountAndFreshDrawsDoNot) {
  const auto chol = skewed_chol(6);
  const auto mu = torch::zeros({6}, torch::kFloat64);
  const auto train = gaussian(5000, mu, chol, 12), test = gaussian(1000, mu, chol, 13);
  const double threshold = eval::memorisation_threshold(test, train, 0.01);
  EXPECT_GT(threshold, 0.0);
  EXPECT_EQ(eval::memorised_share(train.slice(0, 0, 200), train, threshold), 1.0);
  // The threshold is the test set's own 1% quantile: 10 of its 1000 vectors fall below it.
  EXPECT_NEAR(eval::memorised_share(test, train, threshold), 0.01, 0.0015);
  EXPECT_LT(eval::memorised_share(gaussian(1000, mu, chol, 14), train, threshold), 0.03);
}

TEST(Memorisation, NearestDistanceInBlocksEqualsTheDirectMinimum) {
  // More points than one block (4096), so that the running minimum over blocks is exercised.
  const auto points = gaussian(9000, torch::zeros({5}, torch::kFloat64), skewed_chol(5), 15);
  const auto queries = gaussian(50, torch::zeros({5}, torch::kFloat64), skewed_chol(5), 16);
  const auto direct = std::get<0>((queries.unsqueeze(1) - points.unsqueeze(0)).pow(2).sum(2).min(1));
  // float32 distances of vectors of norm ~3: errors about 1e-6 of the squared norms.
  EXPECT_TRUE(torch::allclose(eval::nearest_sq_distance(queries, points), direct, 1e-4, 1e-4));
}
