// How many rows of each global batch every rank computes: in proportion to the ranks' measured
// speed, so that a synchronous all-reduce does not wait for a rank on a slower core.
//
// On shared hosts one vCPU can run slower than another for minutes at a time (docs/journal/performance.md);
// with equal slices the faster rank idles for the difference in every all-reduce. Each rank times its work in each step, every
// rank receives every rank's time (train::Trainer sends them in the all-reduce each step already
// makes), and all ranks derive the same split from the same figures, with no collective of its
// own. The global batch itself (examples, timesteps, noise) never depends on the split.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace ddpm::train {

// Rows for ranks whose rows cost `seconds_per_row` each: proportional to 1 / cost, each rank at
// least `min_rows`, summing to `global` (largest remainders get the rows that rounding leaves).
std::vector<std::int64_t> split_by_speed(std::int64_t global, const std::vector<double>& seconds_per_row,
                                         std::int64_t min_rows);

class BatchBalancer {
 public:
  // Starts from equal rows (`global` divisible by `world`). Disabled, the split stays equal.
  BatchBalancer(std::int64_t global, int world, bool enabled);

  bool enabled() const { return enabled_; }
  const std::vector<std::int64_t>& rows() const { return rows_; }
  // The rows per rank as the logs and the bench print them: "70/58".
  std::string describe() const;
  // The [begin, end) rows of the global batch that `rank` computes.
  std::pair<std::int64_t, std::int64_t> slice(int rank) const;
  // Every rank's seconds for its rows of the last step, the same figures on every rank: updates
  // the smoothed cost per row and re-splits when that would shorten the step by more than 1%.
  void observe(const std::vector<double>& seconds);

 private:
  std::int64_t global_, min_rows_;
  bool enabled_;
  std::vector<std::int64_t> rows_;
  std::vector<double> cost_;  // smoothed seconds per row; empty before the first observation
};

}  // namespace ddpm::train
