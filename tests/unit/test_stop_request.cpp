// Stop signals (util/stop_request.hpp): in training the first only records a request; outside
// training one exits at once; once a stop is under way, repeats of the warning change nothing (the
// SLURM job script resends it every 10 s until the ranks end), and only a second SIGINT exits now.
// Each case runs in a child process (a death test): the handlers and the request are global.
#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>
#include <vector>

#include "util/stop_request.hpp"

using namespace ddpm;

namespace {

// In the child: installs the handlers, raises `in_training` with deferred stopping on, then
// `after` with it off (the loop has stopped and the process is ending), and exits with the signal
// recorded (0: none), unless a handler ended it first.
[[noreturn]] void signal_sequence(const std::vector<int>& in_training, const std::vector<int>& after) {
  stop::install();
  stop::set_deferred(true);
  for (int s : in_training) std::raise(s);
  stop::set_deferred(false);
  for (int s : after) std::raise(s);
  std::exit(stop::requested());
}

}  // namespace

TEST(StopRequestDeathTest, InTrainingTheFirstSignalIsOnlyRecorded) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(signal_sequence({SIGUSR1, SIGTERM}, {}), testing::ExitedWithCode(SIGUSR1), "");
}

TEST(StopRequestDeathTest, OutsideTrainingASignalExitsAtOnce) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(signal_sequence({}, {SIGUSR1}), testing::ExitedWithCode(128 + SIGUSR1),
              "signal received outside training, exiting now");
}

TEST(StopRequestDeathTest, ARepeatedWarningAfterTheStopIsIgnored) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(signal_sequence({SIGUSR1}, {SIGUSR1, SIGTERM}), testing::ExitedWithCode(SIGUSR1), "");
}

TEST(StopRequestDeathTest, ASecondSigintExitsAtOnceEvenAfterTheStop) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(signal_sequence({SIGINT}, {SIGINT}), testing::ExitedWithCode(128 + SIGINT), "second SIGINT, exiting now");
}
