// Fault injection for tests, off unless the environment variable DDPM_FAULT is set:
//   DDPM_FAULT=KIND@STEP[:RANK]        (no RANK: every rank)
// KIND:
//   throw               an exception from training step STEP
//   kill                SIGKILL at the start of training step STEP
//   kill_in_checkpoint  SIGKILL in the middle of writing the checkpoint of step STEP
//   nan                 a NaN loss at training step STEP (the numerical-fault path)
#pragma once

#include <cstdint>

namespace ddpm::fault {

enum class Point { TrainStep, CheckpointWrite };

// Does what DDPM_FAULT asks for at this point, step and rank; nothing otherwise.
void at(Point point, std::int64_t step, int rank);
// True when DDPM_FAULT asks for a NaN loss at this step and rank.
bool nan_loss(std::int64_t step, int rank);

}  // namespace ddpm::fault
