#include <spdlog/spdlog.h>

#include <filesystem>

#include "app/commands.hpp"
#include "data/mnist.hpp"
#include "eval/classifier_training.hpp"
#include "eval/metrics.hpp"
#include "train/classifier_task.hpp"

namespace ddpm::app {

eval::TrainClassifier classifier_training(Session& s) {
  return [&s](model::Classifier& net, const data::Dataset& train_set) {
    net = train::train_classifier(s.cfg, train_set, s.ctx.device(), *s.comm);
  };
}

void cmd_classifier(Session& s) {
  const auto train_set = data::load_dataset(s.cfg.data_dir(), data::Split::Train);
  const auto test_set = data::load_dataset(s.cfg.data_dir(), data::Split::Test);
  // A new classifier from scratch: the file and the checkpoints of an earlier training go first.
  if (s.comm->rank() == 0) {
    std::filesystem::remove(s.cfg.classifier_path());
    std::filesystem::remove_all(config::classifier_stage(s.cfg, train_set.size()).out_dir());
  }
  s.comm->barrier();
  model::Classifier net;
  eval::ensure_classifier(*s.comm, s.cfg, net, train_set, test_set, s.ctx.device(), classifier_training(s));
  // Its features of the real images too (<stem>_features.h5), which every evaluation reads: made
  // here on all the ranks, not by the first evaluation.
  eval::real_features(*s.comm, net, s.cfg, train_set, test_set, s.ctx.device());
}

}  // namespace ddpm::app
