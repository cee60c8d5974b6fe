// Fault injection for tests, off unless the environment variable DDPM_FAULT is set:
//   DDPM_FAULT=KIND@STEP[:RANK]        (no RANK: every rank)
// KIND:
//   throw               an exception from training step STEP
//   kill                SIGKILL at the start of training step STEP
//   hang                sleep for ever at the start of training step STEP (the other ranks then
//                       wait in the step's all-reduce: the collective watchdog's case)
//   kill_in_checkpoint  SIGKILL in the middle of writing the checkpoint of step STEP
//   kill_in_run_file    SIGKILL in the middle of adding the metrics of step STEP to run.h5
//   disk_full           the checkpoint write of step STEP fails as on a full disk (ENOSPC)
//   disk_full_run_file  the run.h5 write of the metrics of step STEP fails the same way
//   nan                 a NaN loss at training step STEP (the numerical-fault path)
//   inf_grad_norm       an infinite gradient norm at training step STEP on that rank alone (a
//                       rank-local numerical fault: the ranks must still agree to skip)
//   slow_checkpoint     the checkpoint write of step STEP takes 3 s longer (a slow disk)
//   slow                from training step STEP on, the rank's forward and backward take twice as
//                       long (it sleeps as long again): a rank on a slower core
#pragma once

#include <cstdint>

namespace ddpm::fault {

enum class Point { TrainStep, CheckpointWrite, RunFileWrite };

// Does what DDPM_FAULT asks for at this point, step and rank; nothing otherwise.
void at(Point point, std::int64_t step, int rank);
// True when DDPM_FAULT asks for a NaN loss at this step and rank.
bool nan_loss(std::int64_t step, int rank);
// True when DDPM_FAULT asks for an infinite gradient norm at this step and rank.
bool poisoned_grad_norm(std::int64_t step, int rank);
// With DDPM_FAULT=slow@STEP[:RANK] from that step on: sleeps `compute_seconds`.
void slow_down(std::int64_t step, int rank, double compute_seconds);

}  // namespace ddpm::fault
