// The first stage of latent diffusion as a train::Task: the autoencoder of config.autoencoder on
// the training images, with model::autoencoder_loss. The posterior's noise is drawn for the whole
// global batch from (seed, step), as the diffusion stage's, so that no rank count changes it.
// Trained with config::autoencoder_stage(cfg) (`ddpm_dist autoencoder`).
#pragma once

#include "config/config.hpp"
#include "data/mnist.hpp"
#include "model/autoencoder.hpp"
#include "train/task.hpp"

namespace ddpm::train {

class AutoencoderTask : public Task {
 public:
  AutoencoderTask(const config::Config& cfg, const data::Dataset& train_set, torch::Device device);
  torch::nn::Module& model() override { return *ae_; }
  torch::nn::Module& ema_model() override { return *ema_ae_; }
  std::int64_t examples() const override { return images_.size(0); }
  // {x, the posterior draw's standard normal noise}
  std::vector<torch::Tensor> inputs(std::int64_t step, const torch::Tensor& rows, std::int64_t begin,
                                    std::int64_t end) override;
  torch::Tensor loss(const std::vector<torch::Tensor>& inputs) override;
  // config::defines_autoencoder
  bool defines_weights(const std::string& key) const override;
  std::string name() const override { return "autoencoder"; }

  model::Autoencoder& autoencoder() { return ae_; }
  model::Autoencoder& ema_autoencoder() { return ema_ae_; }

 private:
  const config::Config& cfg_;
  torch::Device device_;
  model::Autoencoder ae_{nullptr}, ema_ae_{nullptr};
  torch::Tensor images_;  // the training images (uint8) on the device
};

}  // namespace ddpm::train
