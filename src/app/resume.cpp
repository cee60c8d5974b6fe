#include "app/resume.hpp"

#include <spdlog/spdlog.h>

#include <filesystem>

#include "io/run_file.hpp"
#include "util/error.hpp"

namespace ddpm::app {
namespace {

bool resume(const Session& s, train::Trainer& trainer, const std::string& run_dir) {
  const auto& resume = s.opt.resume;
  if (resume.empty()) return false;
  if (resume == "auto") {
    if (trainer.resume_newest()) return true;
    spdlog::info("--resume auto: no checkpoint that verifies in {}/checkpoints; starting from step 0", run_dir);
    return false;
  }
  if (!std::filesystem::exists(resume))
    throw Error("--resume " + resume + ": no such checkpoint; use --resume auto to take the newest in " + run_dir +
                "/checkpoints");
  trainer.resume(resume);
  return true;
}

}  // namespace

bool resume_or_start(const Session& s, train::Trainer& trainer, const std::string& run_dir) {
  const bool resumed = resume(s, trainer, run_dir);
  // A damaged run.h5 does not end the run: it is set aside and rebuilt from the checkpoint.
  if (s.comm->rank() == 0)
    if (const auto warning = io::recover_run_file(run_dir, trainer.resumed_from()); !warning.empty())
      spdlog::warn("{}", warning);
  if (resumed) return true;
  if (s.comm->rank() == 0 && !io::read_train_metrics(io::run_file_path(run_dir)).empty())
    spdlog::warn("{} holds the history of an earlier run; starting afresh replaces it (use --resume auto to continue)",
                 io::run_file_path(run_dir));
  return false;
}

}  // namespace ddpm::app
