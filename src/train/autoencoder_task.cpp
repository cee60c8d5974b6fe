#include "train/autoencoder_task.hpp"

#include "train/step_draws.hpp"
#include "util/rng.hpp"

namespace ddpm::train {

AutoencoderTask::AutoencoderTask(const config::Config& cfg, const data::Dataset& train_set, torch::Device device)
    : cfg_(cfg), device_(device), images_(train_set.images.to(device)) {
  Stream(cfg.run.seed, Purpose::AutoencoderInit).with_global_generator({}, [&] {
    ae_ = model::Autoencoder(cfg.autoencoder, cfg.model.image_size, cfg.model.in_channels);
    ema_ae_ = model::Autoencoder(cfg.autoencoder, cfg.model.image_size, cfg.model.in_channels);
  });
  ae_->to(device_);
  ema_ae_->to(device_);
}

std::vector<torch::Tensor> AutoencoderTask::inputs(std::int64_t step, const torch::Tensor& rows, std::int64_t begin,
                                                   std::int64_t end) {
  const auto shape = ae_->latent_shape();
  const std::vector<std::int64_t> global{cfg_.train.batch_size, shape[0], shape[1], shape[2]};
  const auto noise = Stream(cfg_.run.seed, Purpose::AutoencoderNoise).draw({std::uint64_t(step)}, device_,
                                   [&](c10::optional<at::Generator> gen, const torch::TensorOptions& opts) {
                                     return torch::randn(global, gen, opts);
                                   });
  return {data::to_model_range(images_.index_select(0, rows)), noise.slice(0, begin, end)};
}

torch::Tensor AutoencoderTask::loss(const std::vector<torch::Tensor>& in) {
  return model::autoencoder_loss(ae_, in[0], in[1], cfg_.autoencoder.kl_weight).total;
}

bool AutoencoderTask::defines_weights(const std::string& key) const { return config::defines_autoencoder(key); }

}  // namespace ddpm::train
