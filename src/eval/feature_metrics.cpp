#include "eval/feature_metrics.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>

#include "eval/fid.hpp"

namespace ddpm::eval {
namespace {

torch::Tensor f64(const torch::Tensor& t) { return t.detach().to(torch::kCPU, torch::kFloat64).contiguous(); }

double fid_of(const torch::Tensor& x, const torch::Tensor& ref_mu, const torch::Tensor& ref_sigma) {
  FeatureStats s(x.size(1));
  s.add(x);
  return frechet_distance(s.mean(), s.covariance(), ref_mu, ref_sigma);
}

// Unbiased MMD^2 with the cubic polynomial kernel between x and y.
double mmd2_cubic(const torch::Tensor& x, const torch::Tensor& y) {
  const double d = double(x.size(1));
  auto kernel = [d](const torch::Tensor& a, const torch::Tensor& b) { return (a.mm(b.t()) / d + 1.0).pow(3); };
  const double m = double(x.size(0)), n = double(y.size(0));
  const auto kxx = kernel(x, x), kyy = kernel(y, y);
  const double xx = (kxx.sum().item<double>() - kxx.diagonal().sum().item<double>()) / (m * (m - 1));
  const double yy = (kyy.sum().item<double>() - kyy.diagonal().sum().item<double>()) / (n * (n - 1));
  const double xy = kernel(x, y).sum().item<double>() / (m * n);
  return xx + yy - 2.0 * xy;
}

// Pairwise squared distances, in the inputs' dtype.
torch::Tensor sq_distances(const torch::Tensor& a, const torch::Tensor& b) {
  const auto aa = a.pow(2).sum(1, true), bb = b.pow(2).sum(1, true);
  return (aa + bb.t() - 2.0 * a.mm(b.t())).clamp_min(0.0);
}

at::Generator generator(std::uint64_t seed) { return at::detail::createCPUGenerator(seed); }

}  // namespace

Estimate fid_with_error(const torch::Tensor& gen, const torch::Tensor& ref_mu, const torch::Tensor& ref_sigma,
                        int replicates, std::uint64_t seed) {
  const auto x = f64(gen);
  const auto mu = f64(ref_mu), sigma = f64(ref_sigma);
  Estimate e{fid_of(x, mu, sigma), 0.0};
  auto gen_rng = generator(seed);
  std::vector<double> boot;
  for (int r = 0; r < replicates; ++r) {
    const auto idx = torch::randint(x.size(0), {x.size(0)}, gen_rng, torch::kLong);
    boot.push_back(fid_of(x.index_select(0, idx), mu, sigma));
  }
  if (replicates > 1) e.se = mean_and_spread(boot).se;
  return e;
}

std::vector<double> kid_blocks(const torch::Tensor& gen, const torch::Tensor& real, int blocks) {
  const auto x = f64(gen), y = f64(real);
  if (blocks < 2 || x.size(0) < 2 * blocks || y.size(0) < 2 * blocks)
    throw std::invalid_argument("KID: " + std::to_string(blocks) + " blocks need at least " +
                                std::to_string(2 * blocks) + " vectors of each set (have " +
                                std::to_string(x.size(0)) + " and " + std::to_string(y.size(0)) + ")");
  std::vector<double> per_block;
  for (int b = 0; b < blocks; ++b) {
    const auto xb = x.slice(0, x.size(0) * b / blocks, x.size(0) * (b + 1) / blocks);
    const auto yb = y.slice(0, y.size(0) * b / blocks, y.size(0) * (b + 1) / blocks);
    per_block.push_back(mmd2_cubic(xb, yb));
  }
  return per_block;
}

Estimate kernel_inception_distance(const torch::Tensor& gen, const torch::Tensor& real, int blocks) {
  const auto per_block = kid_blocks(gen, real, blocks);
  return {mmd2_cubic(f64(gen), f64(real)), mean_and_spread(per_block).se / std::sqrt(double(blocks))};
}

Estimate fid_infinity(const torch::Tensor& gen, const torch::Tensor& ref_mu, const torch::Tensor& ref_sigma,
                      double full_se, std::uint64_t seed, int sizes, int per_size) {
  const auto x = f64(gen);
  const auto mu = f64(ref_mu), sigma = f64(ref_sigma);
  const auto n_max = x.size(0);
  auto rng = generator(seed);
  // Ordinary least squares of FID on 1 / n.
  std::vector<double> inv_n, fid;
  for (int j = 0; j < sizes; ++j) {
    const auto n = n_max / 4 + (n_max - n_max / 4) * j / std::max(1, sizes - 1);
    if (n < 2) throw std::invalid_argument("FID extrapolation needs at least 8 vectors");
    for (int s = 0; s < (n == n_max ? 1 : per_size); ++s) {
      const auto idx = torch::randperm(n_max, rng, torch::kLong).slice(0, 0, n);
      inv_n.push_back(1.0 / double(n));
      fid.push_back(fid_of(x.index_select(0, idx), mu, sigma));
    }
  }
  const double m = double(inv_n.size());
  const double mx = std::accumulate(inv_n.begin(), inv_n.end(), 0.0) / m;
  const double my = std::accumulate(fid.begin(), fid.end(), 0.0) / m;
  double sxx = 0, sxy = 0;
  for (std::size_t i = 0; i < inv_n.size(); ++i) {
    sxx += (inv_n[i] - mx) * (inv_n[i] - mx);
    sxy += (inv_n[i] - mx) * (fid[i] - my);
  }
  const double slope = sxy / sxx, intercept = my - slope * mx;
  double rss = 0;
  for (std::size_t i = 0; i < inv_n.size(); ++i) rss += std::pow(fid[i] - intercept - slope * inv_n[i], 2);
  const double fit_var = rss / (m - 2) * (1.0 / m + mx * mx / sxx);
  return {intercept, std::sqrt(fit_var + full_se * full_se)};
}

PrecisionRecall precision_recall(const torch::Tensor& real, const torch::Tensor& gen, int k) {
  const auto r = f64(real), g = f64(gen);
  if (r.size(0) <= k || g.size(0) <= k)
    throw std::invalid_argument("precision and recall with k = " + std::to_string(k) + " need more than " +
                                std::to_string(k) + " vectors in each set");
  // The k-th neighbour other than the vector itself: the (k + 1)-th smallest distance, the first being 0.
  auto radii = [k](const torch::Tensor& set) {
    return std::get<0>(sq_distances(set, set).topk(k + 1, 1, /*largest=*/false)).select(1, k);
  };
  const auto r_radii = radii(r), g_radii = radii(g);
  const auto d = sq_distances(g, r);  // [gen, real]
  const auto on_real = (d <= r_radii.unsqueeze(0)).any(1);
  const auto on_gen = (d <= g_radii.unsqueeze(1)).any(0);
  return {on_real.to(torch::kFloat64).mean().item<double>(), on_gen.to(torch::kFloat64).mean().item<double>()};
}

torch::Tensor nearest_sq_distance(const torch::Tensor& queries, const torch::Tensor& points) {
  // float32: a sample against 60,000 training vectors is a large product, and its rounding (about
  // 1e-7 of the squared norms) is far below the distances compared.
  const auto q = queries.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  const auto p = points.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  constexpr std::int64_t kBlock = 4096;
  auto best = torch::empty({q.size(0)}, torch::kFloat32);
  for (std::int64_t i = 0; i < q.size(0); i += kBlock) {
    const auto qi = q.slice(0, i, std::min(q.size(0), i + kBlock));
    auto row_best = torch::full({qi.size(0)}, std::numeric_limits<float>::infinity(), torch::kFloat32);
    for (std::int64_t j = 0; j < p.size(0); j += kBlock)
      row_best = torch::minimum(row_best, std::get<0>(sq_distances(qi, p.slice(0, j, std::min(p.size(0), j + kBlock))).min(1)));
    best.slice(0, i, i + qi.size(0)).copy_(row_best);
  }
  return best.to(torch::kFloat64);
}

double memorisation_threshold(const torch::Tensor& test, const torch::Tensor& train, double quantile) {
  const auto d = nearest_sq_distance(test, train).sqrt();
  return torch::quantile(d, quantile).item<double>();
}

double memorised_share(const torch::Tensor& gen, const torch::Tensor& train, double threshold) {
  const auto d = nearest_sq_distance(gen, train).sqrt();
  return (d < threshold).to(torch::kFloat64).mean().item<double>();
}

}  // namespace ddpm::eval
