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
  if (resume(s, trainer, run_dir)) return true;
  if (s.comm->rank() == 0 && !io::read_train_metrics(io::run_file_path(run_dir)).empty())
    spdlog::warn("{} holds the history of an earlier run; starting afresh replaces it (use --resume auto to continue)",
                 io::run_file_path(run_dir));
  return false;
}

}  // namespace ddpm::app
