// The diffusion model as a train::Task: the U-Net of config.model, trained on the objective of
// config.diffusion (model::Diffusion::loss) with the noise, levels and label dropout of
// train/step_draws.hpp and the dropout keys of model/dropout.hpp. In latent space
// (diffusion.space: latent) its examples are the posteriors of a latent cache: each step draws a
// fresh latent per row from (seed, step), so no rank count changes it, and standardises it.
#pragma once

#include "config/config.hpp"
#include "data/mnist.hpp"
#include "io/latent_cache.hpp"
#include "model/diffusion.hpp"
#include "model/latent_space.hpp"
#include "model/unet.hpp"
#include "train/task.hpp"

namespace ddpm::train {

class DiffusionTask : public Task {
 public:
  // `latents` (latent space): the training set's cache, checked (latent::load_latent_training); its
  // rows are train_set's images in order, whose labels a conditional model takes.
  DiffusionTask(const config::Config& cfg, const data::Dataset& train_set, torch::Device device,
                const io::LatentCache& latents = {});
  torch::nn::Module& model() override { return *unet_; }
  torch::nn::Module& ema_model() override { return *ema_unet_; }
  std::int64_t examples() const override { return examples_; }
  // {x0, t, eps, labels (conditional models), dropout keys}
  std::vector<torch::Tensor> inputs(std::int64_t step, const torch::Tensor& rows, std::int64_t begin,
                                    std::int64_t end) override;
  torch::Tensor loss(const std::vector<torch::Tensor>& inputs) override;
  bool defines_weights(const std::string& key) const override;
  std::string name() const override { return "U-Net"; }

  model::UNet& unet() { return unet_; }
  model::UNet& ema_unet() { return ema_unet_; }

 private:
  // Step `step`'s clean examples for the rows: images in [-1, 1], or standardised latent draws.
  torch::Tensor x0(std::int64_t step, const torch::Tensor& rows, std::int64_t begin, std::int64_t end);

  const config::Config& cfg_;
  torch::Device device_;
  model::Diffusion diffusion_;
  model::UNet unet_{nullptr}, ema_unet_{nullptr};
  std::int64_t examples_ = 0;
  torch::Tensor images_;        // pixel space: the training images (uint8) on the device, gathered there each step
  torch::Tensor latent_mean_, latent_std_;  // latent space: the posteriors (float32) on the device
  model::LatentScale scale_;               // latent space: x0 = scale_.standardise(z)
  torch::Tensor labels_;        // conditional models: their classes (long) on the device; else undefined
  torch::Tensor loss_weights_;  // per timestep, on the device (train.loss_weighting); undefined: none
};

}  // namespace ddpm::train
