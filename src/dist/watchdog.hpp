// The collective watchdog: a rank that waits in a collective longer than run.collective_timeout_s
// (because another rank hangs, or died in a way the launcher did not notice) says so and ends the
// job, so that a batch job never burns its allocation waiting.
//
// WatchedCommunicator wraps any communicator: each blocking operation, each launch (a launch can
// wait for a peer) and each wait on an asynchronous one, and synchronize(), are timed by a thread
// that wakes every second. That thread also asks the communicator for a failure it found on its
// own (NCCL's asynchronous errors), so that the step never polls. Past the limit, or on such a
// failure, it logs which rank, in which operation, during what (set_phase: the training step,
// sampling...) and for how long; aborts the communicator once (NCCL: ncclCommAbort, which ends the
// GPU's kernels that wait for the lost peer; nothing touches it after, dist/comm_guard.hpp),
// giving the abort 10 s; then exits the process with code 3, which makes mpirun (or srun) end the
// whole job. Phases set as untimed (evaluation: ranks wait for the one with a batch more to sample,
// and for rank 0 computing the metrics) are not timed.
#pragma once

#include <memory>
#include <string>

#include "dist/communicator.hpp"

namespace ddpm::dist {

// `inner` with a watchdog of `timeout_s` seconds (0: none, `inner` itself is returned).
std::unique_ptr<Communicator> watched(std::unique_ptr<Communicator> inner, double timeout_s);

}  // namespace ddpm::dist
