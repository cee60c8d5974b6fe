// Fault injection for tests, off unless the environment variable DDPM_FAULT is set:
//   DDPM_FAULT=KIND@STEP[:RANK]     e.g. throw@5:1 (rank 1 throws at step 5; all ranks if no RANK)
// KIND: throw (an exception from the training step).
#pragma once

#include <cstdint>
#include <string>

namespace ddpm::fault {

// Throws std::runtime_error when DDPM_FAULT asks for a `throw` at this step on this rank.
void at_train_step(std::int64_t step, int rank);

}  // namespace ddpm::fault
