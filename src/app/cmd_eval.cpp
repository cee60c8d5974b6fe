#include <spdlog/spdlog.h>

#include "app/commands.hpp"
#include "eval/run_eval.hpp"
#include "io/run_file.hpp"

namespace ddpm::app {

void cmd_eval(Session& s, const std::vector<std::pair<std::string, double>>& earlier_stages) {
  const auto start = std::chrono::steady_clock::now();
  const auto summary = eval::run_evaluation(*s.comm, s.cfg, s.ctx.device(), classifier_training(s));
  auto stages = earlier_stages;
  stages.emplace_back("sample", summary.sample_seconds);
  stages.emplace_back("metrics", summary.metric_seconds);
  stages.emplace_back("eval total", std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  if (s.comm->rank() != 0) return;
  spdlog::info("report:{}", eval::report_table(summary, stages));
  io::write_wall_time(io::run_file_path(s.cfg.out_dir()), stages);
}

}  // namespace ddpm::app
