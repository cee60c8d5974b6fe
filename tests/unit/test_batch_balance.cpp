#include <gtest/gtest.h>

#include <numeric>

#include "train/batch_balance.hpp"
#include "util/error.hpp"

using namespace ddpm;
using Rows = std::vector<std::int64_t>;

TEST(SplitBySpeed, RowsAreProportionalToSpeedAndSumToTheBatch) {
  EXPECT_EQ(train::split_by_speed(128, {1.0, 1.0}, 16), (Rows{64, 64}));
  // Rank 1 takes 3x as long per row: 3/4 and 1/4 of the batch.
  EXPECT_EQ(train::split_by_speed(128, {1.0, 3.0}, 16), (Rows{96, 32}));
  // Costs 1 : 1.25 give shares 5/9 and 4/9 of 128 = 71.1 and 56.9: the larger remainder gets the row.
  EXPECT_EQ(train::split_by_speed(128, {0.8, 1.0}, 16), (Rows{71, 57}));
  // Shares 1/3 each of 100 = 33.3: the one row left over goes to the first rank.
  EXPECT_EQ(train::split_by_speed(100, {2.0, 2.0, 2.0}, 1), (Rows{34, 33, 33}));
  const auto four = train::split_by_speed(256, {1.0, 1.1, 0.9, 1.7}, 16);
  EXPECT_EQ(std::accumulate(four.begin(), four.end(), std::int64_t{0}), 256);
  EXPECT_LT(four[3], four[1]);
  EXPECT_LT(four[1], four[0]);
  EXPECT_LT(four[0], four[2]);
}

TEST(SplitBySpeed, AVerySlowRankKeepsTheMinimumAndTheOthersShareTheRest) {
  // Shares 100/101 and 1/101 would give rank 1 about one row; it keeps 16, and rank 0 the rest.
  EXPECT_EQ(train::split_by_speed(128, {1.0, 100.0}, 16), (Rows{112, 16}));
  // Two slow ranks at the minimum; ranks 0 and 1 split the remaining 96 as 1 : 2.
  EXPECT_EQ(train::split_by_speed(128, {2.0, 1.0, 50.0, 60.0}, 16), (Rows{32, 64, 16, 16}));
  EXPECT_THROW(train::split_by_speed(10, {1.0, 1.0, 1.0}, 4), Error);
}

TEST(BatchBalancer, StartsEqualAndConvergesToTheSpeedRatio) {
  train::BatchBalancer b(128, 2, true);
  EXPECT_EQ(b.rows(), (Rows{64, 64}));
  EXPECT_EQ(b.slice(1), (std::pair<std::int64_t, std::int64_t>{64, 128}));
  // Rank 1 needs 2x as long per row, steadily: the split goes to 2 : 1 (85.3 : 42.7).
  for (int step = 0; step < 30; ++step) {
    const auto& r = b.rows();
    b.observe({0.01 * double(r[0]), 0.02 * double(r[1])});
  }
  EXPECT_EQ(b.rows(), (Rows{85, 43}));
  EXPECT_EQ(b.slice(0), (std::pair<std::int64_t, std::int64_t>{0, 85}));
  EXPECT_EQ(b.slice(1), (std::pair<std::int64_t, std::int64_t>{85, 128}));
}

TEST(BatchBalancer, SmallNoiseAndOneSlowStepLeaveTheSplitAlone) {
  train::BatchBalancer b(128, 2, true);
  // Within 0.5% of each other: a better split would gain less than 1%, so none is made.
  for (int step = 0; step < 10; ++step) b.observe({0.640 + 0.002 * (step % 2), 0.642 - 0.002 * (step % 2)});
  EXPECT_EQ(b.rows(), (Rows{64, 64}));
  // One step of rank 0 at 1.5x moves the smoothed cost by 0.3 x 50%: the split moves a few rows only.
  b.observe({0.96, 0.64});
  EXPECT_GE(b.rows()[0], 56);
  EXPECT_LT(b.rows()[0], 64);
}

TEST(BatchBalancer, DisabledOrOneRankKeepsEqualSlices) {
  train::BatchBalancer off(128, 2, false);
  off.observe({0.1, 0.9});
  EXPECT_FALSE(off.enabled());
  EXPECT_EQ(off.rows(), (Rows{64, 64}));
  train::BatchBalancer one(128, 1, true);
  one.observe({0.5});
  EXPECT_FALSE(one.enabled());
  EXPECT_EQ(one.rows(), (Rows{128}));
}
