// One communicator handle of a collective library, shared by the thread that runs the job's
// collectives and the watchdog's thread, which may abort it (NCCL's ncclCommAbort frees the handle
// and ends the kernels that wait for a lost peer). Every call on the handle goes through here,
// under one lock that is never held while waiting: a call that could block is made non-blocking
// (NCCL's non-blocking communicators) and polled, with the lock released between polls. So the
// abort never waits behind a hung launch, and once it has run no call reaches the handle again:
// calls on other threads throw CommGuard::Aborted instead of using what it freed.
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace ddpm::dist {

class CommGuard {
 public:
  struct Aborted : std::runtime_error {
    Aborted() : std::runtime_error("the communicator was aborted (the watchdog ended this rank's collectives)") {}
  };

  // Runs `call` on the handle, under the lock.
  template <class Call>
  decltype(auto) run(Call&& call) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (aborted_) throw Aborted();
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

 private:
  std::mutex mutex_;
  std::atomic<bool> aborted_{false};
};

}  // namespace ddpm::dist
