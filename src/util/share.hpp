// A rank's share of N things: the one place where work is divided between ranks.
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>

namespace ddpm {

// [begin, end) of `n` things that rank `rank` of `world` takes: contiguous, in rank order, sizes
// differing by at most one (n / world each when world divides n).
inline std::pair<std::int64_t, std::int64_t> rank_share(std::int64_t n, int rank, int world) {
  return {n * rank / world, n * (rank + 1) / world};
}

// Whole batches of `batch` in `n` things (the last possibly partial).
inline std::int64_t batch_count(std::int64_t n, std::int64_t batch) { return (n + batch - 1) / batch; }

// {first, count}: rank `rank`'s rank_share of the whole batches of `n` things cut at multiples of
// `batch`, so that every thing meets the same batch at any number of ranks.
inline std::pair<std::int64_t, std::int64_t> batch_share(std::int64_t n, std::int64_t batch, int rank, int world) {
  const auto [first_batch, end_batch] = rank_share(batch_count(n, batch), rank, world);
  const std::int64_t first = std::min(n, first_batch * batch), end = std::min(n, end_batch * batch);
  return {first, end - first};
}

}  // namespace ddpm
