#include "app/commands.hpp"
#include "eval/sweep.hpp"

namespace ddpm::app {

void cmd_sweep(Session& s) { eval::run_sweep(*s.comm, s.cfg, s.ctx.device(), classifier_training(s)); }

}  // namespace ddpm::app
