// The evaluation classifier as a train::Task: cross-entropy on the training images and their
// labels, dropout and the data set's augmentation (data/augment.hpp) keyed by (seed, step, row of
// the global batch), so that the weights do not depend on the number of ranks. Trained with
// config::classifier_stage(cfg).
#pragma once

#include "config/config.hpp"
#include "data/mnist.hpp"
#include "dist/communicator.hpp"
#include "model/classifier.hpp"
#include "train/task.hpp"

namespace ddpm::train {

class ClassifierTask : public Task {
 public:
  ClassifierTask(const config::Config& stage, const data::Dataset& train_set, torch::Device device);
  torch::nn::Module& model() override { return *net_; }
  torch::nn::Module& ema_model() override { return *ema_net_; }
  std::int64_t examples() const override { return images_.size(0); }
  // {x, labels, dropout keys}
  std::vector<torch::Tensor> inputs(std::int64_t step, const torch::Tensor& rows, std::int64_t begin,
                                    std::int64_t end) override;
  torch::Tensor loss(const std::vector<torch::Tensor>& inputs) override;
  bool defines_weights(const std::string& key) const override { return config::defines_classifier(key); }
  std::string name() const override { return "classifier"; }

  model::Classifier& classifier() { return net_; }

 private:
  const config::Config& cfg_;
  torch::Device device_;
  model::Classifier net_{nullptr}, ema_net_{nullptr};
  torch::Tensor images_, labels_;  // uint8 and long, on the device
  std::string augment_;            // cfg_.classifier_augment(), resolved once
};

// Trains the evaluation classifier of `cfg` (config::classifier_stage) on `train_set` through
// train::Trainer, continuing from the stage's newest checkpoint; throws when a stop signal ends it
// early (its checkpoint is kept for the next try).
model::Classifier train_classifier(const config::Config& cfg, const data::Dataset& train_set, torch::Device device,
                                   dist::Communicator& comm);

}  // namespace ddpm::train
