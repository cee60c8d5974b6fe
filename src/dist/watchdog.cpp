#include "dist/watchdog.hpp"

#include <spdlog/spdlog.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

#include "util/error.hpp"
#include "util/host.hpp"

namespace ddpm::dist {
namespace {

using Clock = std::chrono::steady_clock;

// Runs `op`'s call inside the watched region; an exception from it (a peer lost: MPI's or NCCL's
// error) goes on naming the rank, the host, the operation and the phase (the training step).
template <class Watch, class Call>
auto watched_call(Watch& dog, const char* op, Call&& call) -> decltype(call()) {
  auto waiting = dog.enter(op);
  try {
    return call();
  } catch (const Error& e) {
    throw Error(dog.where(op) + ": " + e.what());
  } catch (const std::exception& e) {
    throw std::runtime_error(dog.where(op) + ": " + e.what());
  }
}

// How long the abort may take before the process ends without it: an abort that itself hangs
// (a library blocked on a lost peer) must not keep the job.
constexpr double kAbortGrace_s = 10.0;

class Watchdog {
 public:
  // `failure` is asked once a second for an error the communicator found on its own ("" for none);
  // `abort` runs, once, just before the process ends. Both run on the watchdog's thread.
  Watchdog(double timeout_s, int rank, std::function<std::string()> failure, std::function<void()> abort)
      : timeout_s_(timeout_s),
        rank_(rank),
        host_(host_name()),
        failure_(std::move(failure)),
        abort_(std::move(abort)),
        thread_([this] { watch(); }) {}
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      done_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }
  void set_phase(const std::string& phase, bool timed) {
    std::lock_guard<std::mutex> lock(mutex_);
    phase_ = phase;
    timed_ = timed;
  }
  // Marks the calling thread as waiting in `op` until the returned object goes.
  struct Waiting {
    Watchdog* dog;
    ~Waiting() { dog->leave(); }
  };
  // "rank R on host H, in OP during PHASE": where a failure of `op` happened.
  std::string where(const char* op) {
    std::lock_guard<std::mutex> lock(mutex_);
    return fmt::format("rank {} on host {}, in {} during {}", rank_, host_, op, phase_.empty() ? "start-up" : phase_);
  }
  Waiting enter(const char* op) {
    std::lock_guard<std::mutex> lock(mutex_);
    op_ = op;
    since_ = Clock::now();
    return Waiting{this};
  }

 private:
  void leave() {
    std::lock_guard<std::mutex> lock(mutex_);
    op_ = nullptr;
  }
  void watch() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!done_) {
      wake_.wait_for(lock, std::chrono::seconds(1));
      if (done_) return;
      // Asked without the lock: the communicator may be busy for a moment with the step's call.
      lock.unlock();
      const std::string failed = failure_();
      lock.lock();
      const std::string during = (phase_.empty() ? "start-up" : phase_) + " on host " + host_;
      const std::string where = op_ ? op_ : "no collective";
      if (!failed.empty())
        end_job(fmt::format("{} (in {} during {}): a peer failed; ending the job", failed, where, during), lock);
      if (!op_ || !timed_) continue;
      const double waited = std::chrono::duration<double>(Clock::now() - since_).count();
      if (waited < timeout_s_) continue;
      end_job(fmt::format("waited {:.0f} s in {} during {} (run.collective_timeout_s = {}): another rank stopped "
                          "taking part (hung, or lost); ending the job",
                          waited, where, during, timeout_s_),
              lock);
    }
  }
  [[noreturn]] void end_job(const std::string& what, std::unique_lock<std::mutex>& lock) {
    lock.unlock();
    // Other ranks' log lines carry their rank already (util/log.hpp).
    spdlog::error("{}{}. The newest complete checkpoint is intact: continue with --resume auto",
                  rank_ == 0 ? "[rank 0] " : "", what);
    spdlog::default_logger()->flush();
    // The abort runs on a thread of its own, so that one that hangs cannot keep the process.
    auto aborted = std::make_shared<std::promise<void>>();
    std::thread([abort = abort_, aborted] {
      abort();
      aborted->set_value();
    }).detach();
    if (aborted->get_future().wait_for(std::chrono::duration<double>(kAbortGrace_s)) != std::future_status::ready)
      spdlog::error("{}the communicator's abort did not return within {} s; ending without it",
                    rank_ == 0 ? "[rank 0] " : "", kAbortGrace_s);
    spdlog::default_logger()->flush();
    // Not MPI_Abort: MPI may not be called from this thread. A rank that exits without
    // MPI_Finalize makes the launcher end the job.
    std::_Exit(3);
  }

  const double timeout_s_;
  const int rank_;
  const std::string host_;
  const std::function<std::string()> failure_;
  const std::function<void()> abort_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool done_ = false;
  const char* op_ = nullptr;
  Clock::time_point since_;
  std::string phase_;
  bool timed_ = true;
  std::thread thread_;  // last: started once the fields above exist
};

class WatchedWork final : public Work {
 public:
  WatchedWork(std::unique_ptr<Work> inner, Watchdog& dog) : inner_(std::move(inner)), dog_(dog) {}
  void wait() override {
    watched_call(dog_, "the wait for an all-reduce of gradients", [&] { inner_->wait(); });
  }

 private:
  std::unique_ptr<Work> inner_;
  Watchdog& dog_;
};

class WatchedCommunicator final : public Communicator {
 public:
  WatchedCommunicator(std::unique_ptr<Communicator> inner, double timeout_s)
      : inner_(std::move(inner)),
        dog_(timeout_s, inner_->rank(), [this] { return inner_->failure(); }, [this] { inner_->abort(); }) {}
  int rank() const override { return inner_->rank(); }
  int size() const override { return inner_->size(); }
  std::string name() const override { return inner_->name(); }
  void allreduce_sum(torch::Tensor& t) override {
    watched_call(dog_, "an all-reduce", [&] { inner_->allreduce_sum(t); });
  }
  // Launches are watched too: a launch can wait for a peer (NCCL connects lazily, at the first
  // collective).
  std::unique_ptr<Work> allreduce_sum_async(torch::Tensor& t) override {
    return std::make_unique<WatchedWork>(
        watched_call(dog_, "the launch of an all-reduce", [&] { return inner_->allreduce_sum_async(t); }), dog_);
  }
  void progress() override { inner_->progress(); }
  bool launches_from_any_thread() const override { return inner_->launches_from_any_thread(); }
  void group_begin() override { inner_->group_begin(); }
  void group_end() override {
    watched_call(dog_, "the launch of a group of all-reduces", [&] { inner_->group_end(); });
  }
  void broadcast(torch::Tensor& t, int root) override {
    watched_call(dog_, "a broadcast", [&] { inner_->broadcast(t, root); });
  }
  torch::Tensor gatherv(const torch::Tensor& t, int root) override {
    return watched_call(dog_, "a gather", [&] { return inner_->gatherv(t, root); });
  }
  void barrier() override {
    watched_call(dog_, "a barrier", [&] { inner_->barrier(); });
  }
  void synchronize() override {
    watched_call(dog_, "the wait for the device (all-reduces in flight)", [&] { inner_->synchronize(); });
  }
  std::string failure() override { return inner_->failure(); }
  void set_phase(const std::string& phase, bool timed) override { dog_.set_phase(phase, timed); }
  void abort() override { inner_->abort(); }

 private:
  std::unique_ptr<Communicator> inner_;
  Watchdog dog_;
};

}  // namespace

std::unique_ptr<Communicator> watched(std::unique_ptr<Communicator> inner, double timeout_s) {
  if (timeout_s <= 0 || inner->size() == 1) return inner;
  return std::make_unique<WatchedCommunicator>(std::move(inner), timeout_s);
}

}  // namespace ddpm::dist
