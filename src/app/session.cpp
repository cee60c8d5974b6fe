#include <spdlog/spdlog.h>

#include <fstream>

#include "app/commands.hpp"
#include "dist/watchdog.hpp"
#include "util/error.hpp"
#include "util/host.hpp"

namespace ddpm::app {
namespace {

// "model name" of the first processor in /proc/cpuinfo; empty where there is none (not Linux on x86).
std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      const auto value = line.substr(line.find(':') + 1);
      return value.substr(value.find_first_not_of(' '));
    }
  return "";
}

}  // namespace

io::Launch describe_launch(const Session& s) {
  return {s.opt.command,  host_name(),          cpu_model(),          s.ctx.device().str(), s.comm->name(),
          s.placement,    s.ctx.world_size(),   s.threads};
}

void hold_run_folder(Session& s) {
  std::string refusal;
  if (s.ctx.rank() == 0) {
    try {
      s.lock = std::make_unique<io::RunLock>(s.cfg.out_dir(), s.opt.command);
    } catch (const Error& e) {
      refusal = e.what();
    }
  }
  auto refused = torch::tensor({refusal.empty() ? 0.0 : 1.0}, torch::kFloat64);
  s.comm->allreduce_sum(refused);
  if (refused.item<double>() == 0.0) return;
  throw Error(s.ctx.rank() == 0 ? refusal : "rank 0 could not take the run folder's lock (its line says why)");
}

Session start_session(dist::Context& ctx, const Options& opt) {
  Session s{config::load(opt.config_path, opt.overrides), ctx, opt, nullptr};
  s.threads = ctx.configure(s.cfg.run.device, s.cfg.run.threads);
  const auto backend = ctx.choose_backend(s.cfg.run.backend);
  s.comm = dist::watched(ctx.make_communicator(backend), s.cfg.run.collective_timeout_s);
  spdlog::info("ddpm_dist {} (LibTorch {}), config {}: {} rank(s) x {} intra-op thread(s), device {}, backend {} "
               "({})",
               DDPM_VERSION, TORCH_VERSION, opt.config_path, ctx.world_size(), s.threads, ctx.device().str(),
               s.comm->name(), backend.reason);
  s.placement = ctx.placement();  // collective: every rank takes part
  spdlog::info("ranks by host: {}", s.placement);
  spdlog::info("resolved configuration:\n{}", s.cfg.yaml);
  if (const auto warning = config::unmeasured_dataset_warning(s.cfg); !warning.empty() && ctx.rank() == 0)
    spdlog::warn("{}", warning);
  return s;
}

}  // namespace ddpm::app
