// The evaluation classifier: stored in HDF5 with its test accuracy and the fingerprint of its
// weights, and reused by every evaluation after. Its training goes through train::Trainer
// (train::ClassifierTask, config::classifier_stage), which app/ supplies as a TrainClassifier.
#pragma once

#include <functional>
#include <string>

#include "config/config.hpp"
#include "data/mnist.hpp"
#include "dist/communicator.hpp"
#include "model/classifier.hpp"

namespace ddpm::eval {

struct ClassifierInfo {
  std::string path;
  double test_accuracy = 0.0;
  std::string fingerprint;  // io::weights_fingerprint of the weights loaded
  bool checksummed = true;  // false for files written before they carried checksums
  // Its training recipe (files written before "augment" was kept were trained without).
  std::int64_t epochs = 0;
  std::string augment = "none";
  std::int64_t seed = 0;
};

// Trains a new classifier on `train_set` into `net`, the same on every rank.
using TrainClassifier = std::function<void(model::Classifier& net, const data::Dataset& train_set)>;
// Fraction of `set` classified correctly, computed across ranks.
double accuracy(dist::Communicator& comm, model::Classifier& net, const data::Dataset& set, std::int64_t batch,
                const torch::Device& device);

void save_classifier(const std::string& path, model::Classifier& net, double test_accuracy, const config::Config& cfg);
// Loads weights, all or nothing; refuses a file that fails its checksums (io::DamagedFile), of
// another architecture or trained on another data set than `dataset` (data.dataset).
ClassifierInfo load_classifier(const std::string& path, model::Classifier& net, const std::string& dataset);

// Loads cfg.classifier_path(), or trains one with `train` on `train_set` (tested on `test_set`)
// and saves it there when the file does not exist. A file trained with another recipe than cfg's
// (epochs, augmentation, seed) is used with a warning that says so.
ClassifierInfo ensure_classifier(dist::Communicator& comm, const config::Config& cfg, model::Classifier& net,
                                 const data::Dataset& train_set, const data::Dataset& test_set,
                                 const torch::Device& device, const TrainClassifier& train);

}  // namespace ddpm::eval
