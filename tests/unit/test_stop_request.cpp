// Stop signals (util/stop_request.hpp): in training the first only records a request; outside
// training one exits at once; once a stop is under way, repeats of the warning change nothing (the
// SLURM job script resends it every 10 s until the ranks end), and only a second SIGINT exits now.
// Each case runs in a child process (a death test): the handlers and the request are global.
#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>

#include "util/stop_request.hpp"

using namespace ddpm;

TEST(StopRequestDeathTest, InTrainingTheFirstSignalIsOnlyRecorded) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        stop::install();
        stop::set_deferred(true);
        std::raise(SIGUSR1);
        std::raise(SIGTERM);  // a second one while the checkpoint is made
        std::exit(stop::requested() == SIGUSR1 ? 0 : 1);
      },
      testing::ExitedWithCode(0), "");
}

TEST(StopRequestDeathTest, OutsideTrainingASignalExitsAtOnce) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        stop::install();
        std::raise(SIGUSR1);
        std::exit(0);
      },
      testing::ExitedWithCode(128 + SIGUSR1), "signal received outside training, exiting now");
}

// The loop has stopped with its checkpoint and left training; the process is on its way out.
TEST(StopRequestDeathTest, ARepeatedWarningAfterTheStopIsIgnored) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        stop::install();
        stop::set_deferred(true);
        std::raise(SIGUSR1);
        stop::set_deferred(false);
        std::raise(SIGUSR1);
        std::raise(SIGTERM);
        std::exit(stop::requested() == SIGUSR1 ? 0 : 1);
      },
      testing::ExitedWithCode(0), "");
}

TEST(StopRequestDeathTest, ASecondSigintExitsAtOnceEvenAfterTheStop) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        stop::install();
        stop::set_deferred(true);
        std::raise(SIGINT);
        stop::set_deferred(false);
        std::raise(SIGINT);
        std::exit(0);
      },
      testing::ExitedWithCode(128 + SIGINT), "second SIGINT, exiting now");
}
