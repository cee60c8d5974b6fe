#include <spdlog/spdlog.h>

#include <memory>
#include <optional>

#include "app/commands.hpp"
#include "app/resume.hpp"
#include "data/mnist.hpp"
#include "eval/during_training.hpp"
#include "latent/first_stage.hpp"
#include "io/latent_cache.hpp"
#include "io/run_file.hpp"
#include "train/diffusion_task.hpp"
#include "train/trainer.hpp"
#include "util/error.hpp"

namespace ddpm::app {
namespace {

// A resumed latent run must continue on the latents it started on; a new one records them.
void record_latent_origin(const Session& s, const io::LatentCache& cache, bool resumed) {
  const auto run_file = io::run_file_path(s.cfg.out_dir());
  const auto origin = io::read_latent_origin(run_file);
  if (resumed && origin && origin->autoencoder != cache.autoencoder)
    throw Error(run_file + ": the checkpoints were trained on the latents of another autoencoder (weights " +
                origin->autoencoder + ", step " + std::to_string(origin->autoencoder_step) + ") than the cache's (" +
                cache.autoencoder + ", step " + std::to_string(cache.autoencoder_step) +
                "); start a new run (another run.name), or restore that autoencoder");
  if (s.comm->rank() != 0) return;
  auto header = cache;
  header.mean = header.std = torch::Tensor();
  io::write_latent_origin(run_file, header);
}

}  // namespace

bool cmd_train(Session& s) {
  const auto train_set = data::load_dataset(s.cfg.data_dir(), data::Split::Train);
  spdlog::info("{}: {} training images", s.cfg.data_dir(), train_set.size());
  const auto device = s.ctx.device();
  std::optional<latent::LatentTraining> first_stage;
  if (s.cfg.latent()) {
    first_stage = latent::load_latent_training(s.cfg, device, s.comm->rank());
    const auto& c = first_stage->cache;
    const auto shape = first_stage->space.shape();
    spdlog::info("latent space: the posteriors of {} training images (autoencoder weights {} of step {}), a fresh "
                 "draw each step, standardised as (z - {:.4f}) / {:.4f}; the U-Net works on {}x{}x{}",
                 c.images, c.autoencoder, c.autoencoder_step, c.latent_mean, c.latent_std, shape[0], shape[1],
                 shape[2]);
  }
  auto task = std::make_unique<train::DiffusionTask>(s.cfg, train_set, device,
                                                     first_stage ? first_stage->cache : io::LatentCache{});
  auto& diffusion = *task;
  train::Trainer trainer(s.cfg, std::move(task), device, *s.comm);
  spdlog::info("U-Net: {} parameters, {:.1f} MFLOPs per image", diffusion.unet()->parameter_count(),
               diffusion.unet()->forward_flops() / 1e6);
  // Prepared before training (the classifier may need training itself), used every eval.every steps.
  std::unique_ptr<eval::DuringTraining> during;
  if (s.cfg.eval.every > 0) {
    during = std::make_unique<eval::DuringTraining>(
        *s.comm, s.cfg, train_set, device,
        first_stage ? first_stage->space : model::SampleSpace(config::diffusion_shape(s.cfg)), classifier_training(s));
    trainer.set_evaluation(s.cfg.eval.every, [&](std::int64_t step, double train_wall_s) {
      during->evaluate(diffusion.ema_unet(), step, train_wall_s);
    });
  }
  const bool resumed = resume_or_start(s, trainer, s.cfg.out_dir());
  if (s.comm->rank() == 0) io::write_launch(io::run_file_path(s.cfg.out_dir()), describe_launch(s));
  if (first_stage) {
    record_latent_origin(s, first_stage->cache, resumed);
    // The task holds the posteriors on the device; the host copy is no longer needed.
    first_stage->cache.mean = first_stage->cache.std = torch::Tensor();
  }
  return trainer.run() == train::Trainer::Outcome::Finished;
}

}  // namespace ddpm::app
