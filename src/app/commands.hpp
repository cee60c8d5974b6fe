// One function per subcommand; main.cpp parses the command line and dispatches.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "dist/communicator.hpp"
#include "dist/context.hpp"
#include "eval/classifier_training.hpp"
#include "io/run_file.hpp"
#include "io/run_lock.hpp"

namespace ddpm::app {

struct Options {
  std::string config_path;
  std::vector<std::string> overrides;
  std::string resume;  // "", "auto" or a checkpoint path
  std::string command;  // the command line as typed, for the run's record (io::Launch)
};

// What every stage needs: the configuration, this rank's device and the communicator.
struct Session {
  config::Config cfg;
  dist::Context& ctx;
  Options opt;
  std::unique_ptr<dist::Communicator> comm;
  int threads = 1;
  std::string placement{};  // dist::Context::placement() (rank 0)
  std::unique_ptr<io::RunLock> lock{};  // rank 0, for the commands that write the run folder
};
// Loads the configuration, sets threads and device, makes the communicator, logs the set-up.
Session start_session(dist::Context& ctx, const Options& opt);
// Rank 0 takes the run folder's lock (io/run_lock.hpp) for as long as the session lives; every
// rank throws when it is held by another run (collective).
void hold_run_folder(Session& s);
// Where and how this session runs (rank 0), as run.h5's /launch records it.
io::Launch describe_launch(const Session& s);

// False when training stopped early on a signal (a checkpoint of the step reached is written).
bool cmd_train(Session& s);
// The latent-diffusion autoencoder (config::autoencoder_stage), then its latent statistics and
// test-set reconstruction error (io::AutoencoderSummary); false as cmd_train.
bool cmd_autoencoder(Session& s);
void cmd_sample(Session& s);
// The parts `ddpm_dist bench --only` accepts, in the order they run.
const std::vector<std::string>& bench_parts();
// Prints "bench key=value unit" lines; `parts` picks some of bench_parts() (empty: all but
// sample_configured).
void cmd_bench(Session& s, const std::vector<std::string>& parts);
// Samples, measures FID / confidence / coverage and draws the pictures; prints the report table
// with the wall time of `earlier_stages` and its own.
void cmd_eval(Session& s, const std::vector<std::pair<std::string, double>>& earlier_stages = {});
// `ddpm_dist sweep`: the grid of cfg.sweep on the newest checkpoint (eval/sweep.hpp), into run.h5's
// /sweep and <run>/sweep.txt.
void cmd_sweep(Session& s);
// Trains the evaluation classifier anew (eval.classifier), through classifier_training.
void cmd_classifier(Session& s);
// The evaluation classifier's training through train::Trainer (config::classifier_stage), for
// eval::ensure_classifier.
eval::TrainClassifier classifier_training(Session& s);
// Rank 0 only. `ddpm_dist report RUN... [--out FILE]`: runs tools/report.py (installed as
// <prefix>/share/ddpm_dist/report.py) with these arguments; returns its exit status.
int cmd_report(const std::vector<std::string>& runs, const std::string& out);
// Rank 0, at the end of a run or an evaluation: <run_dir>/report.html. A failure warns only: every
// result is already in run.h5, and `ddpm_dist report` writes the page later.
void write_report(const std::string& run_dir);
// Rank 0 only. Prints the summary of `path`; with `verify`, reads back everything in it and prints what fails
// its checksums instead. Returns the exit status: 1 when verification finds damage.
int cmd_inspect(const std::string& path, bool verify);

}  // namespace ddpm::app
