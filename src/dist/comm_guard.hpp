// One communicator handle of a collective library, shared by the thread that runs the job's
// collectives and the watchdog's thread, which may abort it (NCCL's ncclCommAbort frees the handle
// and ends the kernels that wait for a lost peer). Every call on the handle goes through here,
// under one lock that is never held while waiting: a call that could block is made non-blocking
// (NCCL's non-blocking communicators) and polled, with the lock released between polls. So the
// abort never waits behind a hung launch, and once it has run no call reaches the handle again.
// The abort is the watchdog's, which ends the process right after it: a call on another thread
// then parks until that end, rather than use what the abort freed, or return a result the abort
// cut short, or race the watchdog's exit with an error of its own.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <thread>

namespace ddpm::dist {

class CommGuard {
 public:
  // Runs `call` on the handle, under the lock.
  template <class Call>
  decltype(auto) run(Call&& call) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (aborted_) park();
    return call();
  }
  // Runs `poll` under the lock until it returns true, releasing the lock between tries: the wait
  // for a non-blocking call to finish, or for an event, where an abort can step in.
  void until(const std::function<bool()>& poll) {
    while (!run(poll)) std::this_thread::yield();
  }
  // The first call runs `abort` on the handle under the lock and returns true; later calls do
  // nothing and return false.
  bool abort(const std::function<void()>& abort) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (aborted_) return false;
    aborted_ = true;
    abort();
    return true;
  }
  bool aborted() const { return aborted_; }
  // Waits for the end of the process that the abort's caller is bringing about.
  [[noreturn]] static void park() {
    for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
  }

 private:
  std::mutex mutex_;
  std::atomic<bool> aborted_{false};
};

}  // namespace ddpm::dist
