// Power-function EMAs and their post-hoc reconstruction (model/power_ema.hpp), against closed forms
// and against averages tracked directly, in float64 so that rounding stays far below what is tested.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "model/power_ema.hpp"
#include "util/error.hpp"

using namespace ddpm;

namespace {

// A random walk of `n` vectors of `dim` weights (float64), seeded: what training does to weights.
torch::Tensor walk(std::int64_t n, std::int64_t dim, std::uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return torch::randn({n, dim}, gen, torch::kFloat64).cumsum(0) * 0.1;
}

// Tracks a PowerEma over the rows of `w`; returns its values after each update in `at` (1-based).
std::vector<torch::Tensor> track(const torch::Tensor& w, double sigma_rel, const std::vector<std::int64_t>& at) {
  auto live = w[0].clone();
  model::PowerEma ema(live, sigma_rel);
  const auto take = torch::ones({}, torch::kBool);
  std::vector<torch::Tensor> out;
  std::size_t next = 0;
  for (std::int64_t s = 1; s <= w.size(0) && next < at.size(); ++s) {
    live.copy_(w[s - 1]);
    ema.update(take);
    if (s == at[next]) {
      out.push_back(ema.values().clone());
      ++next;
    }
  }
  return out;
}

}  // namespace

// EDM2's two averages, sigma_rel 0.05 and 0.10, are gamma 16.97 and 6.94; the map and its inverse
// agree, and gamma solves the cubic the inverse stands for.
TEST(PowerEma, GammaAndSigmaRelAreInverses) {
  EXPECT_NEAR(model::power_ema_gamma(0.05), 16.97, 0.01);
  EXPECT_NEAR(model::power_ema_gamma(0.10), 6.94, 0.01);
  for (double g : {0.0, 0.5, 6.94, 16.97, 100.0, 1e4, 1e7}) {
    const double s = model::power_ema_sigma_rel(g);
    const double back = model::power_ema_gamma(s);
    EXPECT_NEAR(back, g, 1e-9 * (1 + g)) << "gamma " << g;
    const double t = 1 / (s * s);
    const double cubic = back * back * back + 7 * back * back + (16 - t) * back + 12 - t;
    EXPECT_NEAR(cubic / ((back + 2) * (back + 2) * (back + 3)), 0.0, 1e-9) << "gamma " << g;
  }
  EXPECT_THROW(model::power_ema_gamma(0.0), Error);
  EXPECT_THROW(model::power_ema_gamma(0.3), Error);
}

// The discrete profile sums to 1, and its spread over s / t tends to sigma_rel (to O(1/t)).
TEST(PowerEma, TheProfileHasTheLengthItIsNamedFor) {
  for (double sigma_rel : {0.05, 0.10, 0.2}) {
    const std::int64_t t = 20000;
    const auto p = model::power_ema_profile(model::power_ema_gamma(sigma_rel), t, t);
    EXPECT_NEAR(p.sum().item<double>(), 1.0, 1e-12);
    const auto x = (torch::arange(1, t + 1, torch::kFloat64) - 0.5) / double(t);
    const double mean = (p * x).sum().item<double>();
    const double sd = std::sqrt((p * (x - mean).square()).sum().item<double>());
    EXPECT_NEAR(sd, sigma_rel, 1e-3 * sigma_rel) << sigma_rel;
  }
}

// The tracked average is the profile's combination of the weights it saw; a skipped update changes
// neither the values nor the count.
TEST(PowerEma, TheTrackedAverageIsItsProfileOfTheWeights) {
  const auto w = walk(300, 8, 1);
  const double sigma_rel = 0.1;
  const auto tracked = track(w, sigma_rel, {1, 137, 300});
  EXPECT_TRUE(torch::equal(tracked[0], w[0]));
  for (auto [i, t] : {std::pair<int, std::int64_t>{1, 137}, {2, 300}}) {
    const auto p = model::power_ema_profile(model::power_ema_gamma(sigma_rel), t, 300);
    const auto expected = p.unsqueeze(0).matmul(w).squeeze(0);
    EXPECT_LT((tracked[i] - expected).abs().max().item<double>(), 1e-12 * (1 + w.abs().max().item<double>()));
  }
  auto live = w[0].clone();
  model::PowerEma ema(live, sigma_rel);
  ema.update(torch::ones({}, torch::kBool));
  live.copy_(w[1]);
  const auto before = ema.values().clone();
  ema.update(torch::zeros({}, torch::kBool));
  EXPECT_TRUE(torch::equal(ema.values(), before));
  EXPECT_EQ(ema.updates(), 1);
}

// A target that is one of the snapshots is that snapshot, whole.
TEST(PostHocEma, ATargetThatIsASnapshotIsReconstructedExactly) {
  std::vector<model::EmaSnapshot> snaps;
  for (std::int64_t t : {100, 200, 300})
    for (double s : {0.05, 0.10}) snaps.push_back({model::power_ema_gamma(s), t});
  torch::Tensor residual;
  const auto x = model::posthoc_coefficients(snaps, snaps[3].gamma, 200, &residual);
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(x[i].item<double>(), i == 3 ? 1.0 : 0.0, 1e-8) << i;
  EXPECT_LT(residual.abs().sum().item<double>(), 1e-8);
}

// Snapshots of the averages at sigma_rel 0.05 and 0.10 every 50 updates reconstruct the average
// at 0.08, tracked directly, after 1000 updates. The reconstruction's error is the residual profile
// r (what the least squares leave) applied to the weights: |error| <= sum|r| x max|w|, the bound
// asserted; the least squares must also leave little (sum|r| < 0.1) and beat the nearest snapshot.
TEST(PostHocEma, SnapshotsReconstructAnAverageOfAnotherLength) {
  const std::int64_t n = 1000;
  const auto w = walk(n, 16, 2);
  std::vector<std::int64_t> at;
  for (std::int64_t t = 50; t <= n; t += 50) at.push_back(t);
  std::vector<model::EmaSnapshot> snaps;
  std::vector<torch::Tensor> values;
  for (double s : {0.05, 0.10}) {
    const auto v = track(w, s, at);
    for (std::size_t i = 0; i < at.size(); ++i) {
      snaps.push_back({model::power_ema_gamma(s), at[i]});
      values.push_back(v[i]);
    }
  }
  const double target_sigma = 0.08;
  const auto direct = track(w, target_sigma, {n})[0];
  torch::Tensor residual;
  const auto x = model::posthoc_coefficients(snaps, model::power_ema_gamma(target_sigma), n, &residual);
  const auto rebuilt = x.unsqueeze(0).matmul(torch::stack(values)).squeeze(0);
  const double err = (rebuilt - direct).abs().max().item<double>();
  const double r1 = residual.abs().sum().item<double>();
  const double bound = r1 * w.abs().max().item<double>();
  const double nearest = std::min((values[at.size() - 1] - direct).abs().max().item<double>(),
                                  (values.back() - direct).abs().max().item<double>());
  std::cout << "post-hoc 0.08 from 0.05/0.10: max error " << err << " (bound " << bound << ", sum|r| " << r1
            << "), nearest snapshot " << nearest << "\n";
  EXPECT_LE(err, bound * (1 + 1e-9) + 1e-12);
  EXPECT_LT(r1, 0.1);
  EXPECT_LT(err, 0.2 * nearest);
}
