// The collective watchdog: a wait past run.collective_timeout_s ends the process with code 3; a
// wait inside the limit, or in an untimed phase, does nothing; a world of one rank gets no watchdog.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "dist/watchdog.hpp"

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

}  // namespace

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
