// Fréchet distance between two Gaussians fitted to feature sets, and the statistics behind it,
// accumulated exactly enough (float64 sums and outer-product sums) to be reduced across ranks.
#pragma once

#include <torch/torch.h>

#include "dist/communicator.hpp"

namespace ddpm::eval {

struct FeatureStats {
  torch::Tensor sum;        // float64 [D]
  torch::Tensor outer_sum;  // float64 [D, D]
  std::int64_t count = 0;

  explicit FeatureStats(std::int64_t dim);
  void add(const torch::Tensor& features);  // [B, D], any float dtype
  // Sums over ranks: every rank then holds the statistics of all features.
  void allreduce(dist::Communicator& comm);
  torch::Tensor mean() const;
  // Unbiased covariance (divides by count - 1), float64 [D, D].
  torch::Tensor covariance() const;
};

// ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2), in float64. The square roots come
// from eigen-decompositions of symmetric matrices with negative round-off eigenvalues set to 0,
// so positive semi-definite (even singular) covariances give a real, finite result.
double frechet_distance(const torch::Tensor& mu1, const torch::Tensor& sigma1, const torch::Tensor& mu2,
                        const torch::Tensor& sigma2);

}  // namespace ddpm::eval
