#include "train/autoencoder_task.hpp"

#include "util/rng.hpp"

namespace ddpm::train {

AutoencoderTask::AutoencoderTask(const config::Config& cfg, const data::Dataset& train_set, torch::Device device)
    : cfg_(cfg), device_(device), images_(train_set.images.to(device)) {
  torch::manual_seed(derive_seed({cfg.run.seed, static_cast<std::uint64_t>(Stream::AutoencoderInit)}));
  ae_ = model::Autoencoder(cfg.autoencoder, cfg.model.image_size, cfg.model.in_channels);
  ema_ae_ = model::Autoencoder(cfg.autoencoder, cfg.model.image_size, cfg.model.in_channels);
  ae_->to(device_);
  ema_ae_->to(device_);
}

std::vector<torch::Tensor> AutoencoderTask::inputs(std::int64_t step, const torch::Tensor& rows, std::int64_t begin,
                                                   std::int64_t end) {
  const auto shape = ae_->latent_shape();
  const std::vector<std::int64_t> global{cfg_.train.batch_size, shape[0], shape[1], shape[2]};
  const auto seed = derive_seed({cfg_.run.seed, static_cast<std::uint64_t>(Stream::AutoencoderNoise),
                                 static_cast<std::uint64_t>(step)});
  torch::Tensor noise;
  if (device_.is_cuda()) {
    // A GPU draws from its own generator seeded with the same value (no host work per step).
    torch::cuda::manual_seed_all(seed);
    noise = torch::randn(global, torch::TensorOptions().device(device_));
  } else {
    noise = torch::randn(global, at::detail::createCPUGenerator(seed));
  }
  return {data::to_model_range(images_.index_select(0, rows)), noise.slice(0, begin, end)};
}

torch::Tensor AutoencoderTask::loss(const std::vector<torch::Tensor>& in) {
  return model::autoencoder_loss(ae_, in[0], in[1], cfg_.autoencoder.kl_weight).total;
}

bool AutoencoderTask::defines_weights(const std::string& key) const {
  if (key == "data.dataset") return true;
  if (key.rfind("autoencoder.", 0) != 0) return false;
  return key != "autoencoder.steps" && key != "autoencoder.batch_size" && key != "autoencoder.lr";
}

}  // namespace ddpm::train
