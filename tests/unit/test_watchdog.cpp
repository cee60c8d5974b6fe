// The collective watchdog: a wait past run.collective_timeout_s ends the process with code 3; a
// wait inside the limit, or in an untimed phase, does nothing; a world of one rank gets no watchdog.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include <spdlog/sinks/stdout_color_sinks.h>

#include <unistd.h>

#include <atomic>
#include <cstdlib>

#include "dist/comm_guard.hpp"
#include "dist/watchdog.hpp"
#include "util/log.hpp"

using namespace ddpm;

namespace {

// Two ranks, whose barrier takes as long as asked.
class SlowPeer final : public dist::Communicator {
 public:
  explicit SlowPeer(double barrier_s) : barrier_s_(barrier_s) {}
  int rank() const override { return 0; }
  int size() const override { return 2; }
  std::string name() const override { return "slow"; }
  void allreduce_sum(torch::Tensor&) override {}
  std::unique_ptr<dist::Work> allreduce_sum_async(torch::Tensor&) override { return nullptr; }
  void broadcast(torch::Tensor&, int) override {}
  torch::Tensor gatherv(const torch::Tensor& t, int) override { return t; }
  void barrier() override { std::this_thread::sleep_for(std::chrono::duration<double>(barrier_s_)); }
  // What NCCL's ncclCommAbort does for the real communicator; here, a line the death test sees.
  void abort() override { std::fprintf(stderr, "inner communicator aborted\n"); }

 private:
  double barrier_s_;
};

// Rank 1 of two, whose library handle (a stand-in for ncclComm_t) hangs inside a launch: the launch
// says "in progress" forever, polled through dist::CommGuard as NcclCommunicator polls its
// non-blocking launches. The abort frees the handle; a call on it after that is a use after free,
// which the double reports by exiting with code 99; a second abort exits with 98.
class HangingLaunch final : public dist::Communicator {
 public:
  int rank() const override { return 1; }
  int size() const override { return 2; }
  std::string name() const override { return "hanging"; }
  void allreduce_sum(torch::Tensor& t) override { allreduce_sum_async(t)->wait(); }
  std::unique_ptr<dist::Work> allreduce_sum_async(torch::Tensor&) override {
    guard_.run([this] { touch(); });
    guard_.until([this] {
      touch();
      return false;
    });
    return nullptr;
  }
  void broadcast(torch::Tensor&, int) override {}
  torch::Tensor gatherv(const torch::Tensor& t, int) override { return t; }
  void barrier() override {}
  std::string failure() override {
    if (guard_.aborted()) return "";
    guard_.run([this] { touch(); });
    return "";
  }
  void abort() override {
    if (++aborts_ > 1) {
      std::fprintf(stderr, "aborted twice\n");
      std::_Exit(98);
    }
    guard_.abort([this] {
      freed_ = true;
      std::fprintf(stderr, "handle aborted and freed\n");
    });
  }

 private:
  void touch() {
    if (!freed_) return;
    std::fprintf(stderr, "use after free\n");
    std::_Exit(99);
  }
  dist::CommGuard guard_;
  std::atomic<bool> freed_{false};
  std::atomic<int> aborts_{0};
};

// Two ranks, idle, whose communicator reports an asynchronous failure (what NCCL's
// ncclCommGetAsyncError gives when a peer is lost) and whose abort can be made to hang.
class FailingPeer final : public dist::Communicator {
 public:
  explicit FailingPeer(bool abort_hangs) : abort_hangs_(abort_hangs) {}
  int rank() const override { return 0; }
  int size() const override { return 2; }
  std::string name() const override { return "failing"; }
  void allreduce_sum(torch::Tensor&) override {}
  std::unique_ptr<dist::Work> allreduce_sum_async(torch::Tensor&) override { return nullptr; }
  void broadcast(torch::Tensor&, int) override {}
  torch::Tensor gatherv(const torch::Tensor& t, int) override { return t; }
  void barrier() override {}
  std::string failure() override { return "NCCL reported an asynchronous error: remote process exited or there was a network error"; }
  void abort() override {
    std::fprintf(stderr, "abort called\n");
    if (abort_hangs_) dist::CommGuard::park();
  }

 private:
  bool abort_hangs_;
};

}  // namespace

// The step never polls for asynchronous errors: the watchdog's thread does, and ends the job.
TEST(WatchdogDeathTest, AnAsynchronousFailureEndsTheJobWithoutAnyWait) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        spdlog::set_default_logger(spdlog::stderr_color_mt("watchdog_test"));
        auto comm = dist::watched(std::make_unique<FailingPeer>(false), 60.0);
        comm->set_phase("training step 12");
        std::this_thread::sleep_for(std::chrono::seconds(30));
      },
      ::testing::ExitedWithCode(3),
      "\\[rank 0\\] NCCL reported an asynchronous error: remote process exited.*\\(in no collective during training "
      "step 12 on host [^)]+\\)(.|\n)*abort called");
}

// An abort that itself hangs (a library blocked on the lost peer) does not keep the process.
TEST(WatchdogDeathTest, AnAbortThatHangsDoesNotKeepTheProcess) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        spdlog::set_default_logger(spdlog::stderr_color_mt("watchdog_test"));
        auto comm = dist::watched(std::make_unique<FailingPeer>(true), 60.0);
        std::this_thread::sleep_for(std::chrono::seconds(60));
      },
      ::testing::ExitedWithCode(3), "abort called(.|\n)*did not return within 10 s; ending without it");
}

// The launch is watched: the message names the rank, the operation and the step; the handle is
// aborted once and never touched again (the main thread, polling the launch, parks); the process
// ends with the watchdog's code.
TEST(WatchdogDeathTest, AHungLaunchIsAbortedOnceAndNothingTouchesTheHandleAfter) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        spdlog::set_default_logger(spdlog::stderr_color_mt("watchdog_test"));
        setup_logging(1);
        auto comm = dist::watched(std::make_unique<HangingLaunch>(), 1.0);
        comm->set_phase("training step 7");
        auto t = torch::zeros({4});
        comm->allreduce_sum_async(t);
      },
      ::testing::ExitedWithCode(3),
      "\\[rank 1\\] waited [0-9]+ s in the launch of an all-reduce during training step 7(.|\n)*handle aborted and "
      "freed");
}

TEST(WatchdogDeathTest, AWaitPastTheLimitAbortsTheCommunicatorAndEndsTheProcessWithCode3) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        auto comm = dist::watched(std::make_unique<SlowPeer>(30.0), 1.0);
        comm->set_phase("training step 7");
        comm->barrier();
      },
      ::testing::ExitedWithCode(3), "inner communicator aborted");
}

TEST(Watchdog, AWaitInsideTheLimitPasses) {
  auto comm = dist::watched(std::make_unique<SlowPeer>(0.2), 5.0);
  const auto start = std::chrono::steady_clock::now();
  comm->barrier();
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 5.0);
  EXPECT_EQ(comm->size(), 2);
}

// In-process: had the watchdog fired, the process (this test binary) would have ended with code 3.
TEST(Watchdog, UntimedPhasesMayWaitLonger) {
  auto comm = dist::watched(std::make_unique<SlowPeer>(2.5), 1.0);
  comm->set_phase("the checkpoint of step 4", false);
  const auto start = std::chrono::steady_clock::now();
  comm->barrier();
  EXPECT_GE(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 2.5);
}

TEST(Watchdog, OneRankOrATimeoutOfZeroGetsNone) {
  auto self = std::make_unique<dist::SelfCommunicator>();
  auto* raw = self.get();
  EXPECT_EQ(dist::watched(std::move(self), 5.0).get(), raw);
  auto slow = std::make_unique<SlowPeer>(0.0);
  auto* slow_raw = slow.get();
  EXPECT_EQ(dist::watched(std::move(slow), 0.0).get(), slow_raw);
}

namespace {
// A peer lost in a way the library reports (MPI's or NCCL's error) rather than by silence.
class LostPeer final : public dist::Communicator {
 public:
  int rank() const override { return 1; }
  int size() const override { return 2; }
  std::string name() const override { return "lost"; }
  void allreduce_sum(torch::Tensor&) override { throw std::runtime_error("MPI_Allreduce: MPI_ERR_PROC_FAILED"); }
  std::unique_ptr<dist::Work> allreduce_sum_async(torch::Tensor&) override { return nullptr; }
  void broadcast(torch::Tensor&, int) override {}
  torch::Tensor gatherv(const torch::Tensor& t, int) override { return t; }
  void barrier() override {}
};
}  // namespace

// The error a failed collective raises names the rank, the host, the operation and the step.
TEST(Watchdog, AFailedCollectiveNamesRankHostOperationAndStep) {
  auto comm = dist::watched(std::make_unique<LostPeer>(), 60.0);
  comm->set_phase("training step 45");
  char host[256] = "";
  gethostname(host, sizeof host - 1);
  auto t = torch::zeros({1});
  try {
    comm->allreduce_sum(t);
    FAIL() << "nothing thrown";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "rank 1 on host " + std::string(host) +
                                         ", in an all-reduce during training step 45: MPI_Allreduce: MPI_ERR_PROC_FAILED");
  }
}
