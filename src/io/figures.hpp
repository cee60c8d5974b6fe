// The figures an evaluation measures in the classifier's feature space (eval/feature_metrics.hpp
// computes them, io/run_file.hpp stores them): plain values, shared by both layers.
#pragma once

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

}  // namespace ddpm::io
