#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "app/commands.hpp"
#include "model/sampler.hpp"
#include "train/trainer.hpp"

namespace ddpm::app {
namespace {

// Median wall time of `repeats` calls after `warmup` untimed ones.
template <class F>
double median_seconds(int warmup, int repeats, F&& f) {
  for (int i = 0; i < warmup; ++i) f();
  std::vector<double> t;
  for (int i = 0; i < repeats; ++i) {
    const auto a = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

void report(const std::string& key, double value, const std::string& unit) {
  // Machine-readable: one "bench key=value unit" line per figure.
  spdlog::info("bench {}={:.4g} {}", key, value, unit);
}

}  // namespace

void cmd_bench(const Session& s) {
  const auto& cfg = s.cfg;
  {
    const int n = 1024;
    auto a = torch::randn({n, n}), b = torch::randn({n, n});
    const double sec = median_seconds(2, 9, [&] { torch::mm(a, b); });
    report("matmul_gflops", 2.0 * n * n * n / sec / 1e9, "GFLOP/s (fp32 1024^3)");
  }
  {
    // Synthetic images: speed does not depend on the pixels.
    data::Dataset synthetic{torch::randint(0, 256, {4096, cfg.model.image_size, cfg.model.image_size}, torch::kUInt8),
                            torch::zeros({4096}, torch::kUInt8)};
    train::Trainer trainer(cfg, synthetic, s.device);
    const double sec = median_seconds(3, 10, [&] { trainer.train_step(); });
    report("train_img_per_s", cfg.train.batch_size / sec, "img/s (batch " + std::to_string(cfg.train.batch_size) + ")");
    report("train_step_ms", sec * 1e3, "ms");

    auto& net = trainer.ema_model();
    net->eval();
    model::Diffusion diffusion(cfg.diffusion);
    auto sample_cfg = cfg.sample;
    sample_cfg.sampler = "ddim";
    sample_cfg.steps = std::min(5, cfg.diffusion.timesteps);
    const std::int64_t batch = cfg.sample.batch_size;
    const int size = cfg.model.image_size;
    const double ssec = median_seconds(1, 3, [&] {
      model::sample_images([&](const torch::Tensor& x, const torch::Tensor& t) { return net->forward(x, t); },
                           diffusion, sample_cfg, {cfg.model.in_channels, size, size}, {0, batch, cfg.run.seed},
                           s.device);
    });
    report("sample_img_steps_per_s", batch * sample_cfg.steps / ssec,
           "img-steps/s (batch " + std::to_string(batch) + ")");
  }
}

}  // namespace ddpm::app
