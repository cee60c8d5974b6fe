// One function per subcommand; main.cpp parses the command line and dispatches.
#pragma once

#include <string>
#include <vector>

#include "config/config.hpp"

namespace ddpm::app {

struct Options {
  std::string config_path;
  std::vector<std::string> overrides;
};

// Loads the configuration, sets threads and device, logs the resolved config.
struct Session {
  config::Config cfg;
  torch::Device device{torch::kCPU};
};
Session start_session(const Options& opt);

void cmd_train(const Session& s);
void cmd_sample(const Session& s);
void cmd_bench(const Session& s);

}  // namespace ddpm::app
