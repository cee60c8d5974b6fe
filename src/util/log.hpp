#pragma once

#include <spdlog/spdlog.h>

namespace ddpm {

// Rank 0 talks at info level; the other ranks only warn or fail, with their rank in the line.
inline void setup_logging(int rank) {
  spdlog::set_pattern(rank == 0 ? "[%H:%M:%S] %^%l%$ %v" : "[%H:%M:%S] %^%l%$ [rank " + std::to_string(rank) + "] %v");
  spdlog::set_level(rank == 0 ? spdlog::level::info : spdlog::level::warn);
}

}  // namespace ddpm
