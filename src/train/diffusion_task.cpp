#include "train/diffusion_task.hpp"

#include "model/dropout.hpp"
#include "train/step_draws.hpp"
#include "util/rng.hpp"

namespace ddpm::train {

DiffusionTask::DiffusionTask(const config::Config& cfg, const data::Dataset& train_set, torch::Device device)
    : cfg_(cfg), device_(device), diffusion_(cfg.diffusion), images_(train_set.images.to(device)) {
  if (cfg.model.num_classes > 0) labels_ = train_set.labels.to(torch::kLong).to(device);
  if (cfg.train.loss_weighting == "min_snr") loss_weights_ = diffusion_.min_snr_weights(cfg.train.min_snr_gamma, device);
  // Initial weights depend only on the seed, so every rank builds the same model.
  torch::manual_seed(derive_seed({cfg.run.seed, static_cast<std::uint64_t>(Stream::Init)}));
  unet_ = model::UNet(cfg.model);
  ema_unet_ = model::UNet(cfg.model);
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
  return {data::to_model_range(images_.index_select(0, rows)), t, eps, labels, keys};
}

torch::Tensor DiffusionTask::loss(const std::vector<torch::Tensor>& in) {
  const auto& labels = in[3];
  const auto& keys = in[4];
  return diffusion_.loss(
      [&](const torch::Tensor& x, const torch::Tensor& t) { return unet_->forward(x, t, labels, keys); }, in[0], in[1],
      in[2], loss_weights_);
}

bool DiffusionTask::defines_weights(const std::string& key) const {
  // The network, the noise schedule and the data define what the weights mean; other keys (steps,
  // learning rate, logging, ranks) may change between a run and its continuation.
  return key.rfind("model.", 0) == 0 || key.rfind("diffusion.", 0) == 0 || key == "data.dataset";
}

}  // namespace ddpm::train
