// CapturedGraph's error path (util/first_error.hpp): the error of the captured body is the one
// the caller sees, not that of capture_end() failing after it.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "util/first_error.hpp"

using namespace ddpm;

TEST(FirstError, TheBodysErrorSurvivesAFailingCleanup) {
  bool cleaned = false;
  try {
    util::on_error_cleanup([] { throw std::runtime_error("out of memory in the captured forward"); },
                           [&] {
                             cleaned = true;
                             throw std::runtime_error("capture_end: operation not permitted when stream is capturing");
                           });
    FAIL() << "nothing thrown";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "out of memory in the captured forward");
  }
  EXPECT_TRUE(cleaned);
}

TEST(FirstError, NoCleanupWithoutAnError) {
  int ran = 0;
  bool cleaned = false;
  util::on_error_cleanup([&] { ++ran; }, [&] { cleaned = true; });
  EXPECT_EQ(ran, 1);
  EXPECT_FALSE(cleaned);
}
