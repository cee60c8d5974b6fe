// The evaluation classifier: trained data-parallel across ranks (deterministic for a seed),
// stored in HDF5 with its test accuracy, and reused by every evaluation after.
#pragma once

#include <string>

#include "config/config.hpp"
#include "data/mnist.hpp"
#include "dist/communicator.hpp"
#include "model/classifier.hpp"

namespace ddpm::eval {

struct ClassifierInfo {
  std::string path;
  double test_accuracy = 0.0;
  bool checksummed = true;  // false for files written before they carried checksums
};

// Trains `net` for cfg.eval.classifier_epochs on `train_set`; every rank takes its slice of each
// global batch of 128 and gradients are averaged. Returns the accuracy on `test_set`.
double train_classifier(dist::Communicator& comm, const config::Config& cfg, model::Classifier& net,
                        const data::Dataset& train_set, const data::Dataset& test_set, const torch::Device& device);
// Fraction of `set` classified correctly, computed across ranks.
double accuracy(dist::Communicator& comm, model::Classifier& net, const data::Dataset& set, std::int64_t batch,
                const torch::Device& device);

void save_classifier(const std::string& path, model::Classifier& net, double test_accuracy, const config::Config& cfg);
// Loads weights, all or nothing; refuses a file that fails its checksums (io::DamagedFile), of
// another architecture or trained on another data set than `dataset` (data.dataset).
ClassifierInfo load_classifier(const std::string& path, model::Classifier& net, const std::string& dataset);

// Loads cfg.classifier_path(), or trains it on `train_set` (tested on `test_set`) and saves it there
// when the file does not exist.
ClassifierInfo ensure_classifier(dist::Communicator& comm, const config::Config& cfg, model::Classifier& net,
                                 const data::Dataset& train_set, const data::Dataset& test_set,
                                 const torch::Device& device);

}  // namespace ddpm::eval
