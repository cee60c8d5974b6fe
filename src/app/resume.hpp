// `--resume` for the training stages (train, autoencoder).
#pragma once

#include <string>

#include "app/commands.hpp"
#include "train/trainer.hpp"

namespace ddpm::app {

// Loads the checkpoint that `--resume` names into the trainer, or with "auto" the newest of
// `run_dir` that verifies; false when training starts afresh, with a warning when `run_dir`
// holds the history of an earlier run (which the new one replaces).
bool resume_or_start(const Session& s, train::Trainer& trainer, const std::string& run_dir);

}  // namespace ddpm::app
