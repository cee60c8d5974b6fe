// Measures of a set of generated feature vectors against real ones, each with its uncertainty
// where one can be given: FID's standard error, KID, FID extrapolated to infinite N, precision and
// recall, memorisation. Pure functions of float64 feature tensors [N, D] (any dtype is converted);
// randomness (subsets, bootstrap) comes from the seed passed in, so a result is a function of its
// inputs. DESIGN: docs/evaluation.md.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "io/figures.hpp"

namespace ddpm::eval {

using io::Estimate;
using io::mean_and_spread;

// FID of `gen` against the Gaussian (ref_mu, ref_sigma), with the standard deviation of
// `replicates` bootstrap resamples of `gen` (drawn with replacement) as its standard error: the
// spread that another draw of the same number of samples from the same model would show. The
// reference stays fixed: it is the same for every run measured against it.
Estimate fid_with_error(const torch::Tensor& gen, const torch::Tensor& ref_mu, const torch::Tensor& ref_sigma,
                        int replicates, std::uint64_t seed);

// The unbiased squared MMD with the cubic polynomial kernel k(x, y) = (x.y / D + 1)^3 (Binkowski
// et al. 2018) between `gen` and `real`, over all pairs; the standard error is the standard
// deviation of the same estimate over `blocks` disjoint blocks of both sets divided by
// sqrt(blocks), which overstates the error of the all-pairs estimate slightly (it ignores pairs
// across blocks). Each block needs at least 2 vectors of each set.
Estimate kernel_inception_distance(const torch::Tensor& gen, const torch::Tensor& real, int blocks);
// The same estimate on each of the `blocks` disjoint blocks (block b: the b-th slice of each set).
// Two sample sets drawn from the same noise (the same seeds and indices) are compared block by block:
// the spread of the blocks' differences gives the standard error of their difference, far below the
// errors of the two estimates taken as independent.
std::vector<double> kid_blocks(const torch::Tensor& gen, const torch::Tensor& real, int blocks);

// FID extrapolated to infinite N (Chong and Forsyth 2020): the FID of random subsets of `gen` at
// `sizes` sizes evenly spaced from `gen.size(0)` / 4 to `gen.size(0)`, `per_size` subsets each, is
// fitted by a + b / n; `a` is returned. Its error combines the fit's standard error of `a` with
// `full_se` (the error of the full set's FID, fid_with_error), which the subsets of one set cannot show.
Estimate fid_infinity(const torch::Tensor& gen, const torch::Tensor& ref_mu, const torch::Tensor& ref_sigma,
                      double full_se, std::uint64_t seed, int sizes = 8, int per_size = 3);

// Improved precision and recall (Kynkaanniemi et al. 2019): a vector lies on a set's manifold when
// it is within the distance from some member of that set to that member's k-th nearest neighbour
// in the set. Precision: the share of `gen` on the manifold of `real`; recall: the share of `real`
// on the manifold of `gen`. Euclidean distances in feature space.
struct PrecisionRecall {
  double precision = 0, recall = 0;
};
PrecisionRecall precision_recall(const torch::Tensor& real, const torch::Tensor& gen, int k = 3);

// Squared Euclidean distance from each row of `queries` to its nearest row of `points`, float64
// [Q]; in blocks, so that memory stays bounded whatever the sizes.
torch::Tensor nearest_sq_distance(const torch::Tensor& queries, const torch::Tensor& points);

// The distance below which a sample counts as a copy of a training image: the `quantile` (0.01)
// of the distances from each test image to its nearest training image.
double memorisation_threshold(const torch::Tensor& test, const torch::Tensor& train, double quantile = 0.01);
// The share of `gen` closer to their nearest training vector than `threshold` (a distance).
double memorised_share(const torch::Tensor& gen, const torch::Tensor& train, double threshold);

}  // namespace ddpm::eval
