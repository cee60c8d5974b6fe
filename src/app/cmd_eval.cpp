#include <spdlog/spdlog.h>

#include "app/commands.hpp"
#include "data/mnist.hpp"
#include "eval/classifier_training.hpp"
#include "eval/run_eval.hpp"
#include "util/rng.hpp"

namespace ddpm::app {

void cmd_eval(Session& s, const std::vector<std::pair<std::string, double>>& earlier_stages) {
  const auto start = std::chrono::steady_clock::now();
  const auto summary = eval::run_evaluation(*s.comm, s.cfg, s.ctx.device());
  auto stages = earlier_stages;
  stages.emplace_back("sample", summary.sample_seconds);
  stages.emplace_back("metrics", summary.metric_seconds);
  stages.emplace_back("eval total", std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  if (s.comm->rank() == 0) spdlog::info("report:{}", eval::report_table(summary, stages));
}

void cmd_classifier(Session& s) {
  const auto train_set = data::load_dataset(s.cfg.data_dir(), data::Split::Train);
  const auto test_set = data::load_dataset(s.cfg.data_dir(), data::Split::Test);
  torch::manual_seed(derive_seed({s.cfg.eval.classifier_seed, static_cast<std::uint64_t>(Stream::Init)}));
  model::Classifier net;
  const double acc = eval::train_classifier(*s.comm, s.cfg, net, train_set, test_set, s.ctx.device());
  if (s.comm->rank() == 0) {
    eval::save_classifier(s.cfg.classifier_path(), net, acc, s.cfg);
    spdlog::info("classifier: test accuracy {:.2f}% on {} {} test images; written to {}", 100 * acc, test_set.size(), s.cfg.data.dataset,
                 s.cfg.classifier_path());
  }
}

}  // namespace ddpm::app
