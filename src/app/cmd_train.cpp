#include <spdlog/spdlog.h>

#include "app/commands.hpp"
#include "data/mnist.hpp"
#include "train/trainer.hpp"

namespace ddpm::app {

void cmd_train(Session& s) {
  const auto train_set = data::load_dataset(s.cfg.data.dir, data::Split::Train);
  spdlog::info("{}: {} training images", s.cfg.data.dir, train_set.size());
  train::Trainer trainer(s.cfg, train_set, s.ctx.device(), *s.comm);
  spdlog::info("U-Net: {} parameters", trainer.model()->parameter_count());
  trainer.run();
}

}  // namespace ddpm::app
