// Several runs' final evaluations side by side (`ddpm_dist compare`): each run's figures with their
// errors, the mean over the runs with the runs' spread, and a warning where the runs were measured
// with different evaluation classifiers or sample counts, where their figures do not compare.
#pragma once

#include <string>
#include <vector>

namespace ddpm::io {

// The runs' run.h5 files (or their folders); throws an Error naming a file without /eval.
std::string compare_runs(const std::vector<std::string>& paths);

}  // namespace ddpm::io
