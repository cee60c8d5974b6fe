// The evaluation classifier's features of the real images, computed once per classifier: the
// training set's (the floor's images and the nearest neighbours that memorisation looks for) and
// the test set's (the reference of every measure), with the memorisation threshold they give.
// Named by the fingerprint of the classifier's weights, so that a cache is never used with
// another classifier.
#pragma once

#include <torch/torch.h>

#include <string>

#include "config/config.hpp"

namespace ddpm::io {

struct FeatureCache {
  std::string classifier;  // weights_fingerprint of the classifier
  std::string dataset;     // data.dataset
  torch::Tensor train, test;  // float32 [N, D] in the data set's file order
  double memorisation_threshold = 0;  // eval::memorisation_threshold(test, train)
};

// <Config::classifier_stem()>_features.h5
std::string feature_cache_path(const config::Config& cfg);
void write_feature_cache(const std::string& path, const FeatureCache& cache);
// Every dataset and attribute verified (a damaged file throws DamagedFile).
FeatureCache read_feature_cache(const std::string& path);

}  // namespace ddpm::io
