#pragma once

#include <chrono>
#include <ctime>
#include <string>

namespace ddpm {

// The current time as ISO 8601 UTC, for "created" attributes; `compact` drops the separators
// ("20261207T090248Z"), for file names.
inline std::string now_utc(bool compact = false) {
  const auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  char buf[32];
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::strftime(buf, sizeof buf, compact ? "%Y%m%dT%H%M%SZ" : "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// The monotonic clock that the training loop times its intervals, ETA and wall times with: the
// steady clock, plus time that tests add (advance) to stand for work they do not do.
struct LoopClock {
  using time_point = std::chrono::steady_clock::time_point;
  static time_point now() {
    return std::chrono::steady_clock::now() +
           std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(added()));
  }
  static void advance(double seconds) { added() += seconds; }

 private:
  static double& added() {
    static double seconds = 0.0;
    return seconds;
  }
};

}  // namespace ddpm
