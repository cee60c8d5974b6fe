#include <spdlog/spdlog.h>

#include <thread>

#include "app/commands.hpp"
#include "util/error.hpp"

namespace ddpm::app {

Session start_session(const Options& opt) {
  Session s{config::load(opt.config_path, opt.overrides)};
  const auto& run = s.cfg.run;
  const int threads = run.threads > 0 ? run.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  torch::set_num_threads(threads);
  if (run.device == "cuda" && !torch::cuda::is_available())
    throw Error(s.cfg.source + ": run.device is 'cuda' but no CUDA device is visible to this LibTorch; set "
                "run.device: cpu (or auto)");
  s.device = (run.device != "cpu" && torch::cuda::is_available()) ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  spdlog::info("ddpm_dist {} (LibTorch {}), config {}, device {}, {} intra-op threads", DDPM_VERSION,
               TORCH_VERSION, opt.config_path, s.device.str(), threads);
  spdlog::info("resolved configuration:\n{}", s.cfg.yaml);
  return s;
}

}  // namespace ddpm::app
