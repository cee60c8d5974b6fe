#include "dist/watchdog.hpp"

#include <spdlog/spdlog.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <thread>

namespace ddpm::dist {
namespace {

using Clock = std::chrono::steady_clock;

class Watchdog {
 public:
  // `on_timeout` runs on the watchdog's thread just before the process ends (the communicator's abort).
  Watchdog(double timeout_s, int rank, std::function<void()> on_timeout)
      : timeout_s_(timeout_s), rank_(rank), on_timeout_(std::move(on_timeout)), thread_([this] { watch(); }) {}
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
      if (done_ || !op_ || !timed_) continue;
      const double waited = std::chrono::duration<double>(Clock::now() - since_).count();
      if (waited < timeout_s_) continue;
      // Other ranks' log lines carry their rank already (util/log.hpp).
      spdlog::error("{}waited {:.0f} s in {} during {} (run.collective_timeout_s = {}): another rank stopped "
                    "taking part (hung, or lost); ending the job. The newest complete checkpoint is intact: "
                    "continue with --resume auto",
                    rank_ == 0 ? "[rank 0] " : "", waited, op_, phase_.empty() ? "start-up" : phase_, timeout_s_);
      spdlog::default_logger()->flush();
      on_timeout_();
      // Not MPI_Abort: MPI may not be called from this thread. A rank that exits without
      // MPI_Finalize makes the launcher end the job.
      std::_Exit(3);
    }
  }

  const double timeout_s_;
  const int rank_;
  const std::function<void()> on_timeout_;
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
    auto waiting = dog_.enter("the wait for an all-reduce of gradients");
    inner_->wait();
  }

 private:
  std::unique_ptr<Work> inner_;
  Watchdog& dog_;
};

class WatchedCommunicator final : public Communicator {
 public:
  WatchedCommunicator(std::unique_ptr<Communicator> inner, double timeout_s)
      : inner_(std::move(inner)), dog_(timeout_s, inner_->rank(), [this] { inner_->abort(); }) {}
  int rank() const override { return inner_->rank(); }
  int size() const override { return inner_->size(); }
  std::string name() const override { return inner_->name(); }
  void allreduce_sum(torch::Tensor& t) override {
    auto waiting = dog_.enter("an all-reduce");
    inner_->allreduce_sum(t);
  }
  std::unique_ptr<Work> allreduce_sum_async(torch::Tensor& t) override {
    return std::make_unique<WatchedWork>(inner_->allreduce_sum_async(t), dog_);
  }
  void progress() override { inner_->progress(); }
  bool launches_from_any_thread() const override { return inner_->launches_from_any_thread(); }
  void group_begin() override { inner_->group_begin(); }
  void group_end() override { inner_->group_end(); }
  void broadcast(torch::Tensor& t, int root) override {
    auto waiting = dog_.enter("a broadcast");
    inner_->broadcast(t, root);
  }
  torch::Tensor gatherv(const torch::Tensor& t, int root) override {
    auto waiting = dog_.enter("a gather");
    return inner_->gatherv(t, root);
  }
  void barrier() override {
    auto waiting = dog_.enter("a barrier");
    inner_->barrier();
  }
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
