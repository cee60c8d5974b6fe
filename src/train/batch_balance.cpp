#include "train/batch_balance.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "util/error.hpp"

namespace ddpm::train {
namespace {

// Weight of the newest step in the smoothed cost: a slowdown that lasts shows within a few steps,
// while one slow step (a page fault storm, a checkpoint write on rank 0) moves the split little.
constexpr double kSmoothing = 0.3;
// Re-split only for a predicted gain above this, so that step-to-step noise does not change the
// batch shapes every step.
constexpr double kMinGain = 0.01;

double predicted_seconds(const std::vector<std::int64_t>& rows, const std::vector<double>& cost) {
  double worst = 0.0;
  for (std::size_t r = 0; r < rows.size(); ++r) worst = std::max(worst, double(rows[r]) * cost[r]);
  return worst;
}

}  // namespace

std::vector<std::int64_t> split_by_speed(std::int64_t global, const std::vector<double>& seconds_per_row,
                                         std::int64_t min_rows) {
  const auto n = seconds_per_row.size();
  if (n == 0 || min_rows * std::int64_t(n) > global)
    throw Error("split_by_speed: " + std::to_string(global) + " rows cannot give " + std::to_string(n) +
                " ranks at least " + std::to_string(min_rows) + " each");
  std::vector<double> speed(n), ideal(n);
  for (std::size_t r = 0; r < n; ++r) speed[r] = 1.0 / std::max(seconds_per_row[r], 1e-12);
  // Ranks whose share falls below the minimum get the minimum; the rest share what is left in
  // proportion to speed, which can push another rank below it: repeat until none does.
  std::vector<char> at_min(n, 0);
  for (bool changed = true; changed;) {
    changed = false;
    double free_rows = double(global), free_speed = 0.0;
    for (std::size_t r = 0; r < n; ++r) {
      if (at_min[r])
        free_rows -= double(min_rows);
      else
        free_speed += speed[r];
    }
    for (std::size_t r = 0; r < n; ++r) {
      if (at_min[r]) continue;
      ideal[r] = free_rows * speed[r] / free_speed;
      if (ideal[r] < double(min_rows)) {
        at_min[r] = 1;
        changed = true;
      }
    }
  }
  std::vector<std::int64_t> rows(n);
  std::vector<std::size_t> order(n);
  for (std::size_t r = 0; r < n; ++r) {
    rows[r] = at_min[r] ? min_rows : static_cast<std::int64_t>(std::floor(ideal[r]));
    order[r] = r;
  }
  const auto remainder = [&](std::size_t r) { return at_min[r] ? -1.0 : ideal[r] - double(rows[r]); };
  std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return remainder(a) > remainder(b); });
  std::int64_t left = global - std::accumulate(rows.begin(), rows.end(), std::int64_t{0});
  for (std::size_t i = 0; left > 0; i = (i + 1) % n, --left) ++rows[order[i]];
  return rows;
}

BatchBalancer::BatchBalancer(std::int64_t global, int world, bool enabled)
    : global_(global), min_rows_(std::max<std::int64_t>(1, global / world / 4)), enabled_(enabled && world > 1),
      rows_(static_cast<std::size_t>(world), global / world) {}

std::string BatchBalancer::describe() const {
  std::string split;
  for (auto r : rows_) split += (split.empty() ? "" : "/") + std::to_string(r);
  return split;
}

std::pair<std::int64_t, std::int64_t> BatchBalancer::slice(int rank) const {
  const auto begin = std::accumulate(rows_.begin(), rows_.begin() + rank, std::int64_t{0});
  return {begin, begin + rows_[static_cast<std::size_t>(rank)]};
}

void BatchBalancer::observe(const std::vector<double>& seconds) {
  if (!enabled_) return;
  const bool first = cost_.empty();
  cost_.resize(rows_.size());
  for (std::size_t r = 0; r < rows_.size(); ++r) {
    const double c = seconds[r] / double(rows_[r]);
    cost_[r] = first ? c : (1.0 - kSmoothing) * cost_[r] + kSmoothing * c;
  }
  auto proposed = split_by_speed(global_, cost_, min_rows_);
  if (predicted_seconds(rows_, cost_) > (1.0 + kMinGain) * predicted_seconds(proposed, cost_)) rows_ = std::move(proposed);
}

}  // namespace ddpm::train
