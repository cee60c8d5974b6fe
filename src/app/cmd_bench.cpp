#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "app/commands.hpp"
#include "eval/distributed_sampling.hpp"
#include "train/trainer.hpp"

namespace ddpm::app {
namespace {

using clock = std::chrono::steady_clock;

double seconds_since(clock::time_point t) { return std::chrono::duration<double>(clock::now() - t).count(); }

// Median wall time of `repeats` calls after `warmup` untimed ones.
template <class F>
double median_seconds(int warmup, int repeats, F&& f) {
  for (int i = 0; i < warmup; ++i) f();
  std::vector<double> t;
  for (int i = 0; i < repeats; ++i) {
    const auto a = clock::now();
    f();
    t.push_back(seconds_since(a));
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

void report(const std::string& key, double value, const std::string& unit) {
  // Machine-readable: one "bench key=value unit" line per figure.
  spdlog::info("bench {}={:.4g} {}", key, value, unit);
}

// Training throughput and the share of step time spent waiting for gradient all-reduces.
void bench_training(Session& s, const data::Dataset& synthetic, bool overlap) {
  auto cfg = s.cfg;
  cfg.train.overlap = overlap;
  train::Trainer trainer(cfg, synthetic, s.ctx.device(), *s.comm);
  const int warmup = 3, repeats = 10;
  for (int i = 0; i < warmup; ++i) trainer.train_step();
  const double wait_before = trainer.comm_wait_seconds();
  std::vector<double> times;
  const auto start = clock::now();
  for (int i = 0; i < repeats; ++i) {
    const auto a = clock::now();
    trainer.train_step();
    times.push_back(seconds_since(a));
  }
  const double total = seconds_since(start);
  // The slowest rank's wait share is what the job loses.
  auto wait = torch::tensor({(trainer.comm_wait_seconds() - wait_before) / total}, torch::kFloat64);
  auto waits = s.comm->gatherv(wait, 0);
  std::sort(times.begin(), times.end());
  const double step = times[times.size() / 2];
  const std::string tag = overlap ? "overlap" : "no_overlap";
  const std::string layout = std::to_string(s.comm->size()) + " rank(s) x " + std::to_string(s.threads) + " thread(s)";
  report("train_img_per_s_" + tag, cfg.train.batch_size / step,
         "img/s (global batch " + std::to_string(cfg.train.batch_size) + ", " + layout + ")");
  report("train_step_ms_" + tag, step * 1e3, "ms");
  if (s.comm->rank() == 0) report("comm_wait_fraction_" + tag, waits.max().item<double>(), "of step time (max over ranks)");
}

}  // namespace

void cmd_bench(Session& s) {
  const auto& cfg = s.cfg;
  {
    const int n = 1024;
    auto a = torch::randn({n, n}), b = torch::randn({n, n});
    const double sec = median_seconds(2, 9, [&] { torch::mm(a, b); });
    report("matmul_gflops", 2.0 * n * n * n / sec / 1e9, "GFLOP/s per rank (fp32 1024^3)");
  }
  // Synthetic images: speed does not depend on the pixels.
  data::Dataset synthetic{torch::randint(0, 256, {4096, cfg.model.image_size, cfg.model.image_size}, torch::kUInt8),
                          torch::zeros({4096}, torch::kUInt8)};
  bench_training(s, synthetic, true);
  if (s.comm->size() > 1) bench_training(s, synthetic, false);

  model::UNet net(cfg.model);
  net->to(s.ctx.device());
  net->eval();
  model::Diffusion diffusion(cfg.diffusion);
  auto sample_cfg = cfg;
  sample_cfg.sample.sampler = "ddim";
  sample_cfg.sample.steps = std::min(5, cfg.diffusion.timesteps);
  sample_cfg.sample.num_samples = cfg.sample.batch_size * s.comm->size();
  const double sec = median_seconds(1, 3, [&] {
    eval::sample_distributed(*s.comm, [&](const torch::Tensor& x, const torch::Tensor& t) { return net->forward(x, t); },
                             diffusion, sample_cfg, s.ctx.device());
    s.comm->barrier();
  });
  report("sample_img_steps_per_s", sample_cfg.sample.num_samples * sample_cfg.sample.steps / sec,
         "img-steps/s (batch " + std::to_string(cfg.sample.batch_size) + " per rank, " +
             std::to_string(s.comm->size()) + " rank(s))");
}

}  // namespace ddpm::app
