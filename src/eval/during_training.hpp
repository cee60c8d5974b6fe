// Evaluation during training (eval.every): every N steps the EMA weights draw eval.during_samples
// images with the configured sampler across the ranks, and the same measures as the final
// evaluation (FID and KID with their errors, FID at infinite N, its floor at this N, precision,
// recall, memorisation, confidence, classes present) go into
// run.h5's /eval_history with a grid of the first samples. The classifier and the reference
// statistics are prepared once, before training starts.
#pragma once

#include "config/config.hpp"
#include "data/mnist.hpp"
#include "dist/communicator.hpp"
#include "eval/classifier_training.hpp"
#include "eval/metrics.hpp"
#include "io/run_file.hpp"
#include "model/classifier.hpp"
#include "model/diffusion.hpp"
#include "model/latent_space.hpp"
#include "model/unet.hpp"

namespace ddpm::eval {

class DuringTraining {
 public:
  // Loads (or trains) the evaluation classifier and computes the reference at eval.during_samples.
  // `space`: where the model samples (latents are decoded before they are measured).
  // `train_classifier`: trains the classifier when there is none yet (app/ supplies it).
  DuringTraining(dist::Communicator& comm, const config::Config& cfg, const data::Dataset& train_set,
                 const torch::Device& device, model::SampleSpace space, const TrainClassifier& train_classifier);
  // Every rank calls it at the same step. Samples with `net` (put in evaluation mode), measures,
  // and on rank 0 appends the row to run.h5 and logs it; returns the row on every rank.
  io::EvalHistoryRow evaluate(model::UNet& net, std::int64_t step, double train_wall_s);

 private:
  dist::Communicator& comm_;
  config::Config cfg_;  // sample.num_samples = eval.during_samples; no autoguidance
  torch::Device device_;
  model::Diffusion diffusion_;
  model::SampleSpace space_;
  model::Classifier classifier_;
  Reference ref_;
  torch::Tensor labels_;  // a conditional model's classes asked for, one per sample; else undefined
};

}  // namespace ddpm::eval
