// The evaluation stage: sample with the weights asked for, measure, write /samples, /eval and
// /trajectory into run.h5, draw samples.png, forward.png and reverse.png, and return the figures.
#pragma once

#include <vector>

#include "config/config.hpp"
#include "dist/communicator.hpp"
#include "eval/classifier_training.hpp"
#include "io/run_file.hpp"

namespace ddpm::eval {

struct EvalSummary {
  std::vector<io::EvalRecord> records;  // one per weight set (ema, raw)
  double classifier_accuracy = 0;
  std::string classifier_fingerprint;
  double sample_seconds = 0, metric_seconds = 0;
};

// `train_classifier` trains the evaluation classifier when there is none yet (app/ supplies it).
EvalSummary run_evaluation(dist::Communicator& comm, const config::Config& cfg, const torch::Device& device,
                           const TrainClassifier& train_classifier);

// The report table printed at the end of a run.
std::string report_table(const EvalSummary& s, const std::vector<std::pair<std::string, double>>& stage_seconds);

}  // namespace ddpm::eval
