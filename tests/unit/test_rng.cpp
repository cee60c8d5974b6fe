// util::Stream::with_global_generator: what LibTorch draws from its global generator inside it is
// the key's draw, also when other threads do the same at the same time (ranks as threads in the
// tests, models built side by side).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <thread>
#include <vector>

#include "util/rng.hpp"

using namespace ddpm;

TEST(GlobalGenerator, ADrawInsideIsTheKeysAlsoWhileOtherThreadsDraw) {
  constexpr int kThreads = 4, kRounds = 200;
  const Stream stream(3, Purpose::Init);
  auto draw = [&](int thread, int round) {
    // As a module's construction: several draws with other work between them.
    return stream.with_global_generator({std::uint64_t(thread), std::uint64_t(round)}, [] {
      std::vector<torch::Tensor> parts;
      for (int i = 0; i < 8; ++i) {
        parts.push_back(torch::randn({64}));
        std::this_thread::yield();
      }
      return torch::cat(parts);
    });
  };
  std::vector<std::vector<torch::Tensor>> expected(kThreads), seen(kThreads);
  for (int t = 0; t < kThreads; ++t)
    for (int r = 0; r < kRounds; ++r) expected[t].push_back(draw(t, r));
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int r = 0; r < kRounds; ++r) seen[t].push_back(draw(t, r));
    });
  for (auto& th : threads) th.join();
  int differing = 0;
  for (int t = 0; t < kThreads; ++t)
    for (int r = 0; r < kRounds; ++r) differing += !torch::equal(seen[t][r], expected[t][r]);
  EXPECT_EQ(differing, 0) << "of " << kThreads * kRounds << " draws made side by side";
}
