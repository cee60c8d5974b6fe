#include <spdlog/spdlog.h>

#include <memory>

#include "app/commands.hpp"
#include "app/resume.hpp"
#include "data/mnist.hpp"
#include "eval/during_training.hpp"
#include "train/diffusion_task.hpp"
#include "train/trainer.hpp"

namespace ddpm::app {

bool cmd_train(Session& s) {
  const auto train_set = data::load_dataset(s.cfg.data_dir(), data::Split::Train);
  spdlog::info("{}: {} training images", s.cfg.data_dir(), train_set.size());
  auto task = std::make_unique<train::DiffusionTask>(s.cfg, train_set, s.ctx.device());
  auto& diffusion = *task;
  train::Trainer trainer(s.cfg, std::move(task), s.ctx.device(), *s.comm);
  spdlog::info("U-Net: {} parameters", diffusion.unet()->parameter_count());
  // Prepared before training (the classifier may need training itself), used every eval.every steps.
  std::unique_ptr<eval::DuringTraining> during;
  if (s.cfg.eval.every > 0) {
    during = std::make_unique<eval::DuringTraining>(*s.comm, s.cfg, train_set, s.ctx.device());
    trainer.set_evaluation(s.cfg.eval.every, [&](std::int64_t step, double train_wall_s) {
      during->evaluate(diffusion.ema_unet(), step, train_wall_s);
    });
  }
  resume_or_start(s, trainer, s.cfg.out_dir());
  return trainer.run() == train::Trainer::Outcome::Finished;
}

}  // namespace ddpm::app
