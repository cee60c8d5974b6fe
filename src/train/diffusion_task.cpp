#include "train/diffusion_task.hpp"

#include "model/dropout.hpp"
#include "train/step_draws.hpp"
#include "util/error.hpp"
#include "util/rng.hpp"

namespace ddpm::train {

DiffusionTask::DiffusionTask(const config::Config& cfg, const data::Dataset& train_set, torch::Device device,
                             const io::LatentCache& latents)
    : cfg_(cfg), device_(device), diffusion_(cfg.diffusion), examples_(train_set.size()) {
  if (!cfg.latent()) {
    images_ = train_set.images.to(device);
  } else {
    if (!latents.mean.defined() || latents.mean.size(0) != train_set.size())
      throw Error("diffusion.space: latent needs the latent cache of the " + std::to_string(train_set.size()) +
                  " training images");
    latent_mean_ = latents.mean.to(device);
    latent_std_ = latents.std.to(device);
    scale_ = {latents.latent_mean, latents.latent_std};
  }
  if (cfg.model.num_classes > 0) labels_ = train_set.labels.to(torch::kLong).to(device);
  if (cfg.train.loss_weighting == "min_snr") loss_weights_ = diffusion_.min_snr_weights(cfg.train.min_snr_gamma, device);
  // Initial weights depend only on the seed, so every rank builds the same model.
  Stream(cfg.run.seed, Purpose::Init).with_global_generator({}, [&] {
    unet_ = model::UNet(config::unet_config(cfg));
    ema_unet_ = model::UNet(config::unet_config(cfg));
  });
  unet_->to(device_);
  ema_unet_->to(device_);
}

std::vector<torch::Tensor> DiffusionTask::inputs(std::int64_t step, const torch::Tensor& rows, std::int64_t begin,
                                                 std::int64_t end) {
  const auto [t, eps, no_label] = draw_step(diffusion_, cfg_, step, begin, end, device_);
  torch::Tensor labels;
  if (labels_.defined()) {
    labels = labels_.index_select(0, rows);
    if (no_label.defined()) labels = labels.masked_fill(no_label, cfg_.model.num_classes);
  }
  // Each row's dropout masks follow from its key (seed, step, global row): the same on any number
  // of ranks, under any split, after a resume, and in a graph replay (model/dropout.hpp).
  auto keys = model::dropout_row_keys(cfg_.run.seed, step, begin, end, device_);
  return {x0(step, rows, begin, end), t, eps, labels, keys};
}

torch::Tensor DiffusionTask::x0(std::int64_t step, const torch::Tensor& rows, std::int64_t begin, std::int64_t end) {
  if (images_.defined()) return data::to_model_range(images_.index_select(0, rows));
  auto shape = latent_mean_.sizes().vec();
  shape[0] = cfg_.train.batch_size;
  const auto noise = Stream(cfg_.run.seed, Purpose::LatentDraw).draw({std::uint64_t(step)}, device_,
                                   [&](c10::optional<at::Generator> gen, const torch::TensorOptions& opts) {
                                     return torch::randn(shape, gen, opts);
                                   }).slice(0, begin, end);
  const auto z = latent_mean_.index_select(0, rows) + latent_std_.index_select(0, rows) * noise;
  return scale_.standardise(z);
}

torch::Tensor DiffusionTask::loss(const std::vector<torch::Tensor>& in) {
  const auto& labels = in[3];
  const auto& keys = in[4];
  return diffusion_.loss(
      [&](const torch::Tensor& x, const torch::Tensor& t) { return unet_->forward(x, t, labels, keys); }, in[0], in[1],
      in[2], loss_weights_);
}

bool DiffusionTask::defines_weights(const std::string& key) const { return config::defines_diffusion(cfg_, key); }

}  // namespace ddpm::train
