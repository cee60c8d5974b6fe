#pragma once

#include <chrono>
#include <ctime>
#include <string>

namespace ddpm {

// The current time as ISO 8601 UTC, for "created" attributes.
inline std::string now_utc() {
  const auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  char buf[32];
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace ddpm
