// Graceful stop on SIGTERM, SIGINT and SIGUSR1 (SLURM's warning before the time limit, sent with
// `--signal=USR1@120`; SLURM and `kill` send SIGTERM; Ctrl-C sends SIGINT).
//
// While training, the first of these signals only records a request: the training loop finishes
// its step, the ranks agree through a collective (a signal may reach only some ranks, or reach
// them at different steps), write a checkpoint and exit 75 (EX_TEMPFAIL). From then on, until it ends,
// a second SIGINT exits at once and the others are ignored. Outside training (set-up, sampling,
// evaluation) nothing is lost by stopping at once, so any of them exits at once with a line saying
// so.
#pragma once

namespace ddpm::stop {

// Installs the handlers; call once, before MPI starts its threads.
void install();
// Turns deferred stopping on (while training) or off.
void set_deferred(bool on);
// The signal received while deferred, or 0.
int requested();
// "SIGTERM", "SIGINT", "SIGUSR1", or "signal N".
const char* signal_name(int sig);

}  // namespace ddpm::stop
