#include "eval/fid.hpp"

#include <cmath>
#include <stdexcept>

namespace ddpm::eval {

FeatureStats::FeatureStats(std::int64_t dim)
    : sum(torch::zeros({dim}, torch::kFloat64)), outer_sum(torch::zeros({dim, dim}, torch::kFloat64)) {}

void FeatureStats::add(const torch::Tensor& features) {
  auto f = features.detach().to(torch::kCPU, torch::kFloat64);
  sum += f.sum(0);
  outer_sum += f.t().mm(f);
  count += f.size(0);
}

void FeatureStats::allreduce(dist::Communicator& comm) {
  auto n = torch::tensor({static_cast<double>(count)}, torch::kFloat64);
  comm.allreduce_sum(sum);
  comm.allreduce_sum(outer_sum);
  comm.allreduce_sum(n);
  count = static_cast<std::int64_t>(std::llround(n.item<double>()));
}

torch::Tensor FeatureStats::mean() const { return sum / static_cast<double>(count); }

torch::Tensor FeatureStats::covariance() const {
  if (count < 2) throw std::invalid_argument("covariance needs at least 2 feature vectors");
  const auto mu = mean();
  return (outer_sum - static_cast<double>(count) * torch::outer(mu, mu)) / static_cast<double>(count - 1);
}

namespace {
// Symmetric PSD square root through the eigen-decomposition.
torch::Tensor sqrtm_psd(const torch::Tensor& a) {
  auto sym = (a + a.t()) * 0.5;
  auto [values, vectors] = torch::linalg_eigh(sym, "L");
  return vectors.mm(torch::diag(values.clamp_min(0.0).sqrt())).mm(vectors.t());
}
}  // namespace

double frechet_distance(const torch::Tensor& mu1, const torch::Tensor& sigma1, const torch::Tensor& mu2,
                        const torch::Tensor& sigma2) {
  auto m1 = mu1.to(torch::kFloat64), m2 = mu2.to(torch::kFloat64);
  auto s1 = sigma1.to(torch::kFloat64), s2 = sigma2.to(torch::kFloat64);
  auto root1 = sqrtm_psd(s1);
  auto inner = root1.mm(s2).mm(root1);
  auto eig = torch::linalg_eigvalsh((inner + inner.t()) * 0.5, "L");
  const double tr_covmean = eig.clamp_min(0.0).sqrt().sum().item<double>();
  const double d = (m1 - m2).pow(2).sum().item<double>() + s1.trace().item<double>() + s2.trace().item<double>() -
                   2.0 * tr_covmean;
  if (!std::isfinite(d)) throw std::runtime_error("Fréchet distance is not finite (non-finite features?)");
  return std::max(d, 0.0);
}

}  // namespace ddpm::eval
