#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dist/grad_sync.hpp"
#include "../small_net.hpp"
#include "dist/mpi_communicator.hpp"

using namespace ddpm;

namespace {

using Net = SmallNet;

// Rank-dependent data, so that gradients differ between ranks.
torch::Tensor input(int rank) {
  torch::manual_seed(100 + rank);
  return torch::randn({8, 16});
}

}  // namespace

class GradSyncBuckets : public ::testing::TestWithParam<std::tuple<double, bool>> {};

TEST_P(GradSyncBuckets, EqualsAManualAllreduceOfEachGradient) {
  const auto [bucket_mb, overlap] = GetParam();
  dist::MpiCommunicator comm;
  torch::manual_seed(1);
  Net net, reference;
  dist::broadcast_module(comm, net);
  {
    torch::NoGradGuard no_grad;
    const auto from = net.parameters(), to = reference.parameters();
    for (std::size_t i = 0; i < from.size(); ++i) to[i].copy_(from[i]);
  }
  dist::GradSync sync(comm, net.parameters(), {bucket_mb, bucket_mb / 4, overlap});
  for (int step = 0; step < 2; ++step) {
    // The reference: each local gradient of a twin without GradSync, reduced on its own.
    reference.zero_grad();
    reference.forward(input(comm.rank()) * (step + 1)).pow(2).sum().backward();
    std::vector<torch::Tensor> expected;
    for (const auto& p : reference.parameters()) {
      auto g = p.grad().clone();
      comm.allreduce_sum(g);
      expected.push_back(g / 2);
    }
    net.zero_grad();
    sync.prepare();
    net.forward(input(comm.rank()) * (step + 1)).pow(2).sum().backward();
    sync.finish();
    auto params = net.parameters();
    for (std::size_t i = 0; i < params.size(); ++i) {
      EXPECT_TRUE(torch::allclose(params[i].grad(), expected[i], 1e-6, 1e-7)) << "parameter " << i << " step " << step;
      // The gradients are the buffer's stretches, in parameter order.
      EXPECT_TRUE(params[i].grad().storage().is_alias_of(sync.grads().storage())) << "parameter " << i;
    }
  }
}

// 1e-6 MB puts every parameter in its own bucket; 0.02 MB some together; 100 MB all in one.
INSTANTIATE_TEST_SUITE_P(BucketSizes, GradSyncBuckets,
                         ::testing::Combine(::testing::Values(1e-6, 0.02, 100.0), ::testing::Bool()));

TEST(GradSync, BucketsFollowReverseOrderAndSizeLimit) {
  dist::MpiCommunicator comm;
  Net net;
  EXPECT_EQ(dist::GradSync(comm, net.parameters(), {1e-6, 1e-6, true}).bucket_count(), 6u);
  EXPECT_EQ(dist::GradSync(comm, net.parameters(), {100.0, 100.0, true}).bucket_count(), 1u);
  // 64x64 floats = 16 KiB: a 0.02 MB bucket holds b.weight with what fits beside it.
  const auto some = dist::GradSync(comm, net.parameters(), {0.02, 0.005, true}).bucket_count();
  EXPECT_GT(some, 1u);
  EXPECT_LT(some, 6u);
}

TEST(GradSync, BroadcastMakesReplicasIdentical) {
  dist::MpiCommunicator comm;
  torch::manual_seed(comm.rank() + 10);  // different weights on each rank
  Net net;
  dist::broadcast_module(comm, net, 0);
  for (auto& p : net.parameters()) {
    auto sum = p.detach().clone();
    comm.allreduce_sum(sum);
    EXPECT_TRUE(torch::equal(sum, p.detach() * 2));
  }
}

// With overlap off nothing calls progress(): the requests the steps' waits completed must not pile
// up in the communicator (they did, by the bucket count every step).
TEST(GradSync, CompletedRequestsDoNotPileUpWithOverlapOff) {
  dist::MpiCommunicator comm;
  Net net;
  dist::GradSync sync(comm, net.parameters(), {1e-6, 1e-6, false});
  for (int step = 0; step < 50; ++step) {
    sync.prepare();
    net.forward(input(comm.rank())).pow(2).sum().backward();
    sync.finish();
    EXPECT_LE(comm.in_flight(), sync.bucket_count()) << "after step " << step;
  }
}
