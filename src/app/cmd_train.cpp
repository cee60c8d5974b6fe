#include <spdlog/spdlog.h>

#include <filesystem>
#include <memory>

#include "app/commands.hpp"
#include "data/mnist.hpp"
#include "eval/during_training.hpp"
#include "io/checkpoint.hpp"
#include "io/run_file.hpp"
#include "train/trainer.hpp"
#include "util/error.hpp"

namespace ddpm::app {
namespace {

// Loads the checkpoint that `--resume` names into the trainer; false when training starts afresh.
bool resume(const Session& s, train::Trainer& trainer) {
  const auto& resume = s.opt.resume;
  if (resume.empty()) return false;
  if (resume == "auto") {
    if (trainer.resume_newest()) return true;
    spdlog::info("--resume auto: no checkpoint that verifies in {}/checkpoints; starting from step 0", s.cfg.out_dir());
    return false;
  }
  if (!std::filesystem::exists(resume))
    throw Error("--resume " + resume + ": no such checkpoint; use --resume auto to take the newest in " +
                s.cfg.out_dir() + "/checkpoints");
  trainer.resume(resume);
  return true;
}

}  // namespace

bool cmd_train(Session& s) {
  const auto train_set = data::load_dataset(s.cfg.data_dir(), data::Split::Train);
  spdlog::info("{}: {} training images", s.cfg.data_dir(), train_set.size());
  train::Trainer trainer(s.cfg, train_set, s.ctx.device(), *s.comm);
  spdlog::info("U-Net: {} parameters", trainer.model()->parameter_count());
  // Prepared before training (the classifier may need training itself), used every eval.every steps.
  std::unique_ptr<eval::DuringTraining> during;
  if (s.cfg.eval.every > 0) {
    during = std::make_unique<eval::DuringTraining>(*s.comm, s.cfg, train_set, s.ctx.device());
    trainer.set_evaluation(s.cfg.eval.every, [&](std::int64_t step, double train_wall_s) {
      during->evaluate(trainer.ema_model(), step, train_wall_s);
    });
  }
  if (!resume(s, trainer) && s.comm->rank() == 0 && !io::read_train_metrics(io::run_file_path(s.cfg.out_dir())).empty())
    spdlog::warn("{} holds the history of an earlier run; starting afresh replaces it (use --resume auto to continue)",
                 io::run_file_path(s.cfg.out_dir()));
  return trainer.run() == train::Trainer::Outcome::Finished;
}

}  // namespace ddpm::app
