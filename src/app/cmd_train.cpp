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

// The checkpoint to continue from, or "" to start afresh.
std::string resume_source(const Session& s) {
  const auto& resume = s.opt.resume;
  if (resume.empty()) return "";
  if (resume != "auto") {
    if (!std::filesystem::exists(resume))
      throw Error("--resume " + resume + ": no such checkpoint; use --resume auto to take the newest in " +
                  s.cfg.out_dir() + "/checkpoints");
    return resume;
  }
  std::vector<std::string> skipped;
  const auto found = io::latest_checkpoint(s.cfg.out_dir(), &skipped);
  for (const auto& why : skipped) spdlog::warn("--resume auto: skipping {}", why);
  if (!found) {
    spdlog::info("--resume auto: no complete checkpoint in {}/checkpoints; starting from step 0", s.cfg.out_dir());
    return "";
  }
  return *found;
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
  const auto from = resume_source(s);
  if (!from.empty()) {
    trainer.resume(from);
  } else if (s.comm->rank() == 0 && !io::read_train_metrics(io::run_file_path(s.cfg.out_dir())).empty()) {
    spdlog::warn("{} holds the history of an earlier run; starting afresh replaces it (use --resume auto to continue)",
                 io::run_file_path(s.cfg.out_dir()));
  }
  return trainer.run() == train::Trainer::Outcome::Finished;
}

}  // namespace ddpm::app
