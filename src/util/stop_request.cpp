#include "util/stop_request.hpp"

#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>

namespace ddpm::stop {
namespace {

volatile std::sig_atomic_t g_deferred = 0;
volatile std::sig_atomic_t g_requested = 0;

// Only async-signal-safe calls here: write(2) and _exit(2).
void say(const char* text) {
  const auto n = std::strlen(text);
  [[maybe_unused]] const auto written = ::write(STDERR_FILENO, text, n);
}

void on_signal(int sig) {
  if (g_deferred && g_requested == 0) {
    g_requested = sig;
    return;
  }
  if (g_deferred && sig != SIGINT) return;  // already stopping; a checkpoint is being made
  say(g_deferred ? "ddpm_dist: second SIGINT, exiting now without a checkpoint\n"
                 : "ddpm_dist: signal received outside training, exiting now (checkpoints on disk are kept)\n");
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
