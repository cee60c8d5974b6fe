// The figures an evaluation measures in the classifier's feature space (eval/feature_metrics.hpp
// computes them, io/run_file.hpp stores them): plain values, shared by both layers.
#pragma once

#include <cmath>
#include <numeric>
#include <vector>

namespace ddpm::io {

// A figure and its standard error.
struct Estimate {
  double value = 0, se = 0;
};

struct FeatureFigures {
  Estimate fid, kid, fid_inf;
  double precision = 0, recall = 0;
  double memorised = 0;  // the share closer to a training image than 99% of test images are
};

// The mean and the sample standard deviation (n - 1) of `values` (standard deviation 0 for one
// value, NaN for none): the spread over seeds or runs.
inline Estimate mean_and_spread(const std::vector<double>& values) {
  if (values.empty()) return {std::nan(""), std::nan("")};
  const double n = double(values.size());
  const double mean = std::accumulate(values.begin(), values.end(), 0.0) / n;
  double ss = 0;
  for (double v : values) ss += (v - mean) * (v - mean);
  return {mean, values.size() > 1 ? std::sqrt(ss / (n - 1)) : 0.0};
}

}  // namespace ddpm::io
