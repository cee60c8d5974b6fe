// An interconnect double that breaks the completion contract's timing on purpose: W ranks are W
// threads of this process, and a reduction is summed and written into the ranks' tensors by a
// delivery thread some milliseconds after the last rank launched it. Until then each rank's tensor
// holds NaN (it belongs to the communicator), so a reader that does not wait sees garbage, not a
// stale but plausible value. Launches inside a group start only at group_end, as NCCL's do.
//
// Its waits are those of a GPU communicator: Work::wait() orders what the caller does next after
// the result (on a GPU a stream dependency; here, where the stream is the calling thread, the
// thread blocks until delivery) and counts as a stream wait; synchronize() is the host's wait and
// counts as one. So a test sees which of the two a caller used, and how often.
#pragma once

#include <torch/torch.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "dist/communicator.hpp"

namespace late {

enum class Completion { AfterDelivery, TakenAtLaunch };

class ThreadWorld {
 public:
  ThreadWorld(int size, Completion completion, double delay_s)
      : size_(size), completion_(completion), delay_s_(delay_s) {}
  ~ThreadWorld() {
    for (auto& [seq, op] : ops_)
      if (op->delivery.joinable()) op->delivery.join();
  }
  int size() const { return size_; }
  Completion completion() const { return completion_; }

  struct Op {
    std::vector<torch::Tensor> parts, targets;
    int arrived = 0;
    bool done = false;
    std::thread delivery;
  };
  // Rank `rank`'s reduction number `seq` (ranks launch reductions in the same order).
  Op* contribute(int seq, int rank, torch::Tensor t) {
    torch::NoGradGuard no_grad;
    std::lock_guard<std::mutex> lock(mutex_);
    auto& op = ops_[seq];
    if (!op) op = std::make_unique<Op>();
    op->parts.resize(size_);
    op->targets.resize(size_);
    op->parts[rank] = t.detach().clone();
    op->targets[rank] = t;
    t.detach().fill_(std::numeric_limits<float>::quiet_NaN());
    if (++op->arrived == size_) {
      Op* raw = op.get();
      raw->delivery = std::thread([this, raw] {
        std::this_thread::sleep_for(std::chrono::duration<double>(delay_s_));
        torch::NoGradGuard no_grad;
        auto sum = torch::zeros_like(raw->parts[0]);
        for (const auto& p : raw->parts) sum += p;
        for (auto& t : raw->targets) t.detach().copy_(sum);
        std::lock_guard<std::mutex> lock(mutex_);
        raw->done = true;
        delivered_.notify_all();
      });
    }
    return op.get();
  }
  void wait(Op* op) {
    std::unique_lock<std::mutex> lock(mutex_);
    delivered_.wait(lock, [op] { return op->done; });
  }

 private:
  const int size_;
  const Completion completion_;
  const double delay_s_;
  std::mutex mutex_;
  std::condition_variable delivered_;
  std::map<int, std::unique_ptr<Op>> ops_;
};

class LateWork final : public ddpm::dist::Work {
 public:
  LateWork(ThreadWorld& world, bool in_group, std::atomic<int>& stream_waits)
      : world_(world), in_group_(in_group), stream_waits_(stream_waits) {}
  void wait() override {
    ++stream_waits_;
    // NcclCommunicator before the completion fix: the event of a launch inside a group was
    // recorded before ncclGroupEnd had enqueued anything, so it was complete at once.
    if (world_.completion() == Completion::TakenAtLaunch && in_group_) return;
    if (!op_) throw std::logic_error("contract broken: wait() on a grouped all-reduce before group_end()");
    world_.wait(op_);
  }
  void started(ThreadWorld::Op* op) { op_ = op; }

 private:
  ThreadWorld& world_;
  const bool in_group_;
  std::atomic<int>& stream_waits_;
  ThreadWorld::Op* op_ = nullptr;
};

class LateCommunicator final : public ddpm::dist::Communicator {
 public:
  LateCommunicator(ThreadWorld& world, int rank) : world_(world), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return world_.size(); }
  std::string name() const override { return "late"; }
  // Device-ordered, as NcclCommunicator's of a device tensor.
  void allreduce_sum(torch::Tensor& t) override { allreduce_sum_async(t)->wait(); }
  std::unique_ptr<ddpm::dist::Work> allreduce_sum_async(torch::Tensor& t) override {
    auto work = std::make_unique<LateWork>(world_, in_group_, stream_waits_);
    if (in_group_)
      pending_.push_back({work.get(), t});
    else
      work->started(world_.contribute(seq_++, rank_, t));
    return work;
  }
  void group_begin() override { in_group_ = true; }
  void group_end() override {
    in_group_ = false;
    for (auto& [work, t] : pending_) work->started(world_.contribute(seq_++, rank_, t));
    pending_.clear();
  }
  // The root's tensor as a sum in which the others add zeros.
  void broadcast(torch::Tensor& t, int root) override {
    if (rank_ != root) {
      torch::NoGradGuard no_grad;
      t.zero_();
    }
    allreduce_sum(t);
  }
  torch::Tensor gatherv(const torch::Tensor&, int) override { throw std::logic_error("not used"); }
  void barrier() override { throw std::logic_error("not used"); }
  // Every launch was ordered before what followed it: the host's wait finds nothing left.
  void synchronize() override { ++host_waits_; }

  int host_waits() const { return host_waits_; }
  int stream_waits() const { return stream_waits_; }

 private:
  ThreadWorld& world_;
  const int rank_;
  int seq_ = 0;
  bool in_group_ = false;
  // The works and tensors launched in the open group; the works outlive it (GradSync holds them).
  std::vector<std::pair<LateWork*, torch::Tensor>> pending_;
  std::atomic<int> host_waits_{0}, stream_waits_{0};
};

}  // namespace late
