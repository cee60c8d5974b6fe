// The evaluation of a set of generated images against MNIST, in the feature space of the
// project's own classifier. Every rank works on its own images; statistics are summed across ranks.
#pragma once

#include <functional>

#include <torch/torch.h>

#include <vector>

#include "config/config.hpp"
#include "data/mnist.hpp"
#include "dist/communicator.hpp"
#include "eval/feature_metrics.hpp"
#include "io/feature_cache.hpp"
#include "model/classifier.hpp"

namespace ddpm::eval {

using io::FeatureFigures;

// KID's standard error: the spread over this many disjoint blocks of the samples (feature_metrics.hpp).
constexpr int kKidBlocks = 10;

struct Reference {
  torch::Tensor mu, sigma;  // float64, of the test set (every rank)
  std::int64_t count = 0;
  FeatureFigures floor;     // every measure of N training images (N = sample count): what real images score
  std::string classifier;   // the fingerprint of the classifier's weights (io::weights_fingerprint)
  // Rank 0 only: the real features the measures compare with.
  torch::Tensor real;   // float64 [R, D]: R = min(test images, max(N, 1000)) test images, a fixed choice
  torch::Tensor train;  // float32 [M, D]: every training image, for memorisation
  double memorisation_threshold = 0;
};

struct Metrics {
  double mean_confidence = 0, classes_present = 0;
  FeatureFigures figures;  // every rank
  std::vector<std::int64_t> class_histogram;  // 10 counts
  std::int64_t count = 0;
  torch::Tensor gen_features;  // float32 [N, D] on rank 0, in sample-index order
  torch::Tensor labels_pred;   // int64 [N] on rank 0
};

// The classifier's features of every training and test image, on rank 0 (an empty cache on the
// others), computed across ranks: read from io::feature_cache_path(cfg) when it
// holds those of this classifier, else computed and written there.
io::FeatureCache real_features(dist::Communicator& comm, model::Classifier& net, const config::Config& cfg,
                               const data::Dataset& train, const data::Dataset& test, const torch::Device& device);
// The same, computed every time and written nowhere.
io::FeatureCache compute_real_features(dist::Communicator& comm, model::Classifier& net, const config::Config& cfg,
                                       const data::Dataset& train, const data::Dataset& test,
                                       const torch::Device& device);

// The reference for `n_samples` samples from rank 0's `features`: the test set's statistics and
// the floor (n_samples training images chosen by eval.classifier_seed) with every measure.
Reference reference_stats(dist::Communicator& comm, const io::FeatureCache& features, const config::Config& cfg,
                          std::int64_t n_samples);

// Every measure of `gen` (rank 0's feature vectors) against `ref`, on rank 0; NaN where `gen` has
// too few vectors for a measure (KID: 20, FID extrapolation: 8, precision and recall: 4).
FeatureFigures measure_features(const torch::Tensor& gen, const Reference& ref);

// The mean of each measure over sample seeds, with the standard error of that mean (the seeds'
// samples are independent: the errors add in quadrature, divided by their count).
FeatureFigures mean_over_seeds(const std::vector<FeatureFigures>& per_seed);

// Float images in [-1, 1] -> float images in [-1, 1] (on the CPU), e.g. an autoencoder's reconstruction.
using ImageTransform = std::function<torch::Tensor(const torch::Tensor&)>;
// The FID of the floor's training images (reference_stats) after `transform`, against `ref`: with
// the autoencoder's reconstruction, how far the first stage alone moves real images.
double transformed_floor_fid(dist::Communicator& comm, model::Classifier& net, const config::Config& cfg,
                             const data::Dataset& train, const Reference& ref, std::int64_t n_samples,
                             const ImageTransform& transform, const torch::Device& device);

// `local_images`: this rank's generated images, float [n, 1, 28, 28] in [-1, 1], classified in
// batches of `batch`. With local ranges that start at multiples of `batch` (as batch_share gives
// for batch = sample.batch_size) every image meets the same batch at any world size, and the
// features are bitwise those of one rank; the measures are computed on rank 0 from them.
Metrics evaluate(dist::Communicator& comm, model::Classifier& net, const torch::Tensor& local_images,
                 const Reference& ref, std::int64_t batch, const torch::Device& device);

// How often the classifier's predictions match the classes the samples were asked for: overall,
// and per class 0..num_classes-1 (NaN for a class not asked for). "No class" requests (index
// num_classes) are left out.
struct ConditionalAccuracy {
  double overall = 0;
  std::vector<double> per_class;
};
ConditionalAccuracy conditional_accuracy(const torch::Tensor& predicted, const torch::Tensor& asked, int num_classes);

}  // namespace ddpm::eval
