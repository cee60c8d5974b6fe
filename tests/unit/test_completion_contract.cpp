// The completion contract of dist::Communicator (docs/distributed.md), driven through GradSync by
// the interconnect double of late_world.hpp, which completes every reduction late.
//
// Wired correctly (wait() orders what follows after the result), GradSync's averages must equal
// the gradient of the whole global batch computed in one process, with overlap on and off and
// with unequal rows per rank. Wired as NcclCommunicator was before the fix (the completion of a
// launch inside a group taken at launch, when nothing was enqueued yet), the same test must fail:
// that shows the double can see the defect.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <iostream>
#include <limits>
#include <thread>

#include "dist/grad_sync.hpp"
#include "../small_net.hpp"
#include "late_world.hpp"

using namespace ddpm;

namespace {

using late::Completion;
using late::LateCommunicator;
using late::ThreadWorld;

using Net = SmallNet;

// The global batch and its per-row loss; a rank's loss is the mean over its rows.
const torch::Tensor& global_batch() {
  static const torch::Tensor x = [] {
    torch::manual_seed(21);
    return torch::randn({12, 16});
  }();
  return x;
}
torch::Tensor slice_loss(Net& net, std::int64_t begin, std::int64_t end) {
  return net.forward(global_batch().slice(0, begin, end)).pow(2).sum(1).mean();
}

std::vector<torch::Tensor> reference_gradients() {
  torch::manual_seed(1);
  Net net;
  slice_loss(net, 0, global_batch().size(0)).backward();
  std::vector<torch::Tensor> out;
  for (const auto& p : net.parameters()) out.push_back(p.grad().clone());
  return out;
}

// Each rank (a thread) computes its rows' loss, scaled by rows_r x W / B as the trainer scales it,
// and GradSync averages; returns the largest relative difference from the one-process gradient.
double largest_error(Completion completion, bool overlap, const std::vector<std::int64_t>& rows) {
  const int world = static_cast<int>(rows.size());
  ThreadWorld interconnect(world, completion, 0.02);
  const auto expected = reference_gradients();
  std::vector<double> error(world, 0.0);
  // Built here, one after the other: the default generator is shared by the threads.
  std::vector<std::unique_ptr<Net>> nets;
  for (int r = 0; r < world; ++r) {
    torch::manual_seed(1);
    nets.push_back(std::make_unique<Net>());
  }
  std::vector<std::thread> ranks;
  std::int64_t begin = 0;
  for (int r = 0; r < world; ++r) {
    const std::int64_t b = begin, e = begin + rows[r];
    begin = e;
    ranks.emplace_back([&, r, b, e] {
      LateCommunicator comm(interconnect, r);
      Net& net = *nets[r];
      // 1e-6 MB: every parameter in a bucket of its own, so that several all-reduces are in flight.
      dist::GradSync sync(comm, net.parameters(), {1e-6, 1e-6, overlap});
      sync.prepare();
      const double scale = double(e - b) * world / double(global_batch().size(0));
      (slice_loss(net, b, e) * scale).backward();
      sync.finish();
      const auto params = net.parameters();
      for (std::size_t i = 0; i < params.size(); ++i) {
        // A NaN (a buffer read before delivery) is the largest error of all.
        const double e = ((params[i].grad() - expected[i]).norm() / expected[i].norm()).item<double>();
        error[r] = std::isnan(e) ? std::numeric_limits<double>::infinity() : std::max(error[r], e);
      }
    });
  }
  for (auto& t : ranks) t.join();
  return *std::max_element(error.begin(), error.end());
}

}  // namespace

class CompletionContract : public ::testing::TestWithParam<std::tuple<bool, std::vector<std::int64_t>>> {};

// float32 sums of at most 12 rows in another order: a few units in the last place, far below 1e-5.
TEST_P(CompletionContract, LateReductionsGiveTheGradientOfTheGlobalBatch) {
  const auto& [overlap, rows] = GetParam();
  const double error = largest_error(Completion::AfterDelivery, overlap, rows);
  std::cout << "completion after delivery: largest relative gradient error " << error << "\n";
  EXPECT_LT(error, 1e-5);
}

INSTANTIATE_TEST_SUITE_P(OverlapAndRows, CompletionContract,
                         ::testing::Combine(::testing::Bool(),
                                            ::testing::Values(std::vector<std::int64_t>{6, 6},
                                                              std::vector<std::int64_t>{9, 3},
                                                              std::vector<std::int64_t>{2, 7, 3})));

// With overlap off every bucket is launched inside finish()'s group: completion taken at launch
// lets finish() read buffers the reduction has not written. (With overlap on, the hooks launch
// outside any group, where taking completion at launch is right.)
class CompletionTakenAtLaunch : public ::testing::TestWithParam<std::vector<std::int64_t>> {};

TEST_P(CompletionTakenAtLaunch, TheDoubleSeesItInsideAGroup) {
  const double error = largest_error(Completion::TakenAtLaunch, false, GetParam());
  std::cout << "completion taken at launch: largest relative gradient error " << error << "\n";
  EXPECT_GT(error, 0.1);
}

INSTANTIATE_TEST_SUITE_P(Rows, CompletionTakenAtLaunch,
                         ::testing::Values(std::vector<std::int64_t>{6, 6}, std::vector<std::int64_t>{9, 3},
                                           std::vector<std::int64_t>{2, 7, 3}));

TEST(CompletionContract, WaitBeforeGroupEndIsRefusedByTheDouble) {
  ThreadWorld interconnect(1, Completion::AfterDelivery, 0.0);
  LateCommunicator comm(interconnect, 0);
  auto t = torch::ones({3});
  comm.group_begin();
  auto work = comm.allreduce_sum_async(t);
  EXPECT_THROW(work->wait(), std::logic_error);
  comm.group_end();
  work->wait();
  EXPECT_TRUE(torch::equal(t, torch::ones({3})));
}
