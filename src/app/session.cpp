#include <spdlog/spdlog.h>

#include "app/commands.hpp"
#include "dist/watchdog.hpp"

namespace ddpm::app {

Session start_session(dist::Context& ctx, const Options& opt) {
  Session s{config::load(opt.config_path, opt.overrides), ctx, opt, nullptr};
  s.threads = ctx.configure(s.cfg.run.device, s.cfg.run.threads);
  s.comm = dist::watched(ctx.make_communicator(s.cfg.run.backend), s.cfg.run.collective_timeout_s);
  spdlog::info("ddpm_dist {} (LibTorch {}), config {}: {} rank(s) x {} intra-op thread(s), device {}, backend {}",
               DDPM_VERSION, TORCH_VERSION, opt.config_path, ctx.world_size(), s.threads, ctx.device().str(),
               s.comm->name());
  const auto placement = ctx.placement();  // collective: every rank takes part
  spdlog::info("ranks by host: {}", placement);
  spdlog::info("resolved configuration:\n{}", s.cfg.yaml);
  return s;
}

}  // namespace ddpm::app
