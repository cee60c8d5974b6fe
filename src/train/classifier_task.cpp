#include "train/classifier_task.hpp"

#include "data/augment.hpp"
#include "model/dropout.hpp"
#include "train/trainer.hpp"
#include "util/error.hpp"
#include "util/rng.hpp"
#include "util/row_keys.hpp"

namespace ddpm::train {

ClassifierTask::ClassifierTask(const config::Config& stage, const data::Dataset& train_set, torch::Device device)
    : cfg_(stage),
      device_(device),
      images_(train_set.images.to(device)),
      labels_(train_set.labels.to(torch::kLong).to(device)),
      augment_(stage.classifier_augment()) {
  Stream(stage.run.seed, Purpose::Init).with_global_generator({}, [&] {
    net_ = model::Classifier();
    ema_net_ = model::Classifier();
  });
  net_->to(device_);
  ema_net_->to(device_);
}

std::vector<torch::Tensor> ClassifierTask::inputs(std::int64_t step, const torch::Tensor& rows, std::int64_t begin,
                                                  std::int64_t end) {
  auto images = images_.index_select(0, rows);
  // No keys to compute (a host loop and an upload each step) where nothing is augmented (MNIST).
  if (augment_ != "none")
    images = data::augment(images, row_keys(Stream(cfg_.run.seed, Purpose::Augment), step, begin, end, device_),
                           augment_);
  return {data::to_model_range(images), labels_.index_select(0, rows),
          model::dropout_row_keys(cfg_.run.seed, step, begin, end, device_)};
}

torch::Tensor ClassifierTask::loss(const std::vector<torch::Tensor>& in) {
  return torch::cross_entropy_loss(net_->forward(in[0], in[2]), in[1]);
}

model::Classifier train_classifier(const config::Config& cfg, const data::Dataset& train_set, torch::Device device,
                                   dist::Communicator& comm) {
  const auto stage = config::classifier_stage(cfg, train_set.size());
  auto task = std::make_unique<ClassifierTask>(stage, train_set, device);
  auto& trained = *task;
  Trainer trainer(stage, std::move(task), device, comm);
  // A training stopped earlier (a signal, a killed job) continues from its checkpoint.
  trainer.resume_newest();
  if (trainer.run() != Trainer::Outcome::Finished)
    throw Error("the evaluation classifier's training stopped at step " + std::to_string(trainer.step()) +
                " on a signal; its checkpoint is in " + stage.out_dir() + ", and the next evaluation continues it");
  auto net = trained.classifier();
  net->eval();
  return net;
}

}  // namespace ddpm::train
