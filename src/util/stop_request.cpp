#include "util/stop_request.hpp"

#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>

namespace ddpm::stop {
namespace {

// Written by the handler, read by the training thread and others (the watchdog's, MPI's): atomics
// that are lock-free are async-signal-safe, which volatile sig_atomic_t is not across threads.
std::atomic<int> g_deferred{0};
std::atomic<int> g_requested{0};
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler needs a lock-free atomic");

// Only async-signal-safe calls here: write(2) and _exit(2).
void say(const char* text) {
  const auto n = std::strlen(text);
  [[maybe_unused]] const auto written = ::write(STDERR_FILENO, text, n);
}

void on_signal(int sig) {
  int none = 0;
  if (g_deferred && g_requested.compare_exchange_strong(none, sig)) return;
  // Already stopping: the checkpoint is being made, or is made and the process is ending. A
  // repeat (SLURM's job script resends the warning until the ranks end) changes nothing.
  const bool stopping = g_requested != 0;
  if (stopping && sig != SIGINT) return;
  say(!stopping ? "ddpm_dist: signal received outside training, exiting now (checkpoints on disk are kept)\n"
      : g_deferred ? "ddpm_dist: second SIGINT, exiting now without a checkpoint\n"
                   : "ddpm_dist: second SIGINT, exiting now (the stop's checkpoint is written)\n");
  ::_exit(128 + sig);
}

}  // namespace

void install() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int sig : {SIGTERM, SIGINT, SIGUSR1}) sigaction(sig, &sa, nullptr);
}

void set_deferred(bool on) { g_deferred = on ? 1 : 0; }

int requested() { return g_requested; }

const char* signal_name(int sig) {
  switch (sig) {
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGUSR1: return "SIGUSR1";
    default: {
      static thread_local char buf[24];
      std::snprintf(buf, sizeof buf, "signal %d", sig);
      return buf;
    }
  }
}

}  // namespace ddpm::stop
