// The evaluation of a set of generated images against MNIST, in the feature space of the
// project's own classifier. Every rank works on its own images; statistics are summed across ranks.
#pragma once

#include <functional>

#include <torch/torch.h>

#include <vector>

#include "config/config.hpp"
#include "data/mnist.hpp"
#include "dist/communicator.hpp"
#include "model/classifier.hpp"

namespace ddpm::eval {

struct Reference {
  torch::Tensor mu, sigma;  // float64, of the MNIST test set
  std::int64_t count = 0;
  double fid_floor = 0.0;  // FID of N training images against the test set, N = sample count
};

struct Metrics {
  double fid = 0, mean_confidence = 0, classes_present = 0;
  std::vector<std::int64_t> class_histogram;  // 10 counts
  std::int64_t count = 0;
  torch::Tensor gen_features;  // float32 [N, D] on rank 0, in sample-index order
  torch::Tensor labels_pred;   // int64 [N] on rank 0
};

// Feature statistics of `test` and the floor for `n_samples` images of `train`, computed across ranks.
Reference reference_stats(dist::Communicator& comm, model::Classifier& net, const config::Config& cfg,
                          const data::Dataset& train, const data::Dataset& test, std::int64_t n_samples,
                          const torch::Device& device);

// Float images in [-1, 1] -> float images in [-1, 1] (on the CPU), e.g. an autoencoder's reconstruction.
using ImageTransform = std::function<torch::Tensor(const torch::Tensor&)>;
// The FID of the floor's training images (reference_stats) after `transform`, against `ref`: with
// the autoencoder's reconstruction, the best a latent diffusion model can reach at this N.
double transformed_floor_fid(dist::Communicator& comm, model::Classifier& net, const config::Config& cfg,
                             const data::Dataset& train, const Reference& ref, std::int64_t n_samples,
                             const ImageTransform& transform, const torch::Device& device);

// `local_images`: this rank's generated images, float [n, 1, 28, 28] in [-1, 1], classified in
// batches of `batch`. With local ranges that start at multiples of `batch` (as sample_range gives
// for batch = sample.batch_size) every image meets the same batch at any world size, and the
// features are bitwise those of one rank.
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
