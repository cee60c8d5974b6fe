#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "app/commands.hpp"
#include "eval/distributed_sampling.hpp"
#include "model/precision.hpp"
#include "train/trainer.hpp"

namespace ddpm::app {
namespace {

using clock = std::chrono::steady_clock;

double seconds_since(clock::time_point t) { return std::chrono::duration<double>(clock::now() - t).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

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
  return median(t);
}

void report(const std::string& key, double value, const std::string& unit) {
  // Machine-readable: one "bench key=value unit" line per figure.
  spdlog::info("bench {}={:.4g} {}", key, value, unit);
}

// A variant of the training step to measure.
struct TrainVariant {
  std::string tag;
  bool overlap = true;
  bool bf16 = false;
  bool channels_last = false;
};

// Training throughput, achieved GFLOP/s and the share of step time spent waiting for gradient
// all-reduces (the slowest rank's share is what the job loses).
void bench_training(Session& s, const data::Dataset& synthetic, const TrainVariant& v, double train_flops,
                    double matmul_gflops) {
  auto cfg = s.cfg;
  cfg.train.overlap = v.overlap;
  cfg.train.precision = v.bf16 ? "bf16" : "fp32";
  train::Trainer trainer(cfg, synthetic, s.ctx.device(), *s.comm);
  if (v.bf16 && !trainer.bf16()) return;  // resolve_bf16 said why
  if (v.channels_last)
    for (auto& p : trainer.model()->parameters())
      if (p.dim() == 4) p.set_data(p.data().contiguous(torch::MemoryFormat::ChannelsLast));
  const int warmup = 2, repeats = 7;
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
  auto wait = torch::tensor({(trainer.comm_wait_seconds() - wait_before) / total}, torch::kFloat64);
  auto waits = s.comm->gatherv(wait, 0);
  const double step = median(times);
  const double img_s = cfg.train.batch_size / step;
  const double gflops_per_rank = img_s * train_flops / s.comm->size() / 1e9;
  const std::string layout = std::to_string(s.comm->size()) + " rank(s) x " + std::to_string(s.threads) + " thread(s)";
  report("train_img_per_s_" + v.tag, img_s, "img/s (global batch " + std::to_string(cfg.train.batch_size) + ", " + layout + ")");
  report("train_step_ms_" + v.tag, step * 1e3, "ms");
  report("train_gflops_per_rank_" + v.tag, gflops_per_rank, "GFLOP/s (counted FLOPs / step time)");
  if (matmul_gflops > 0)
    report("train_fraction_of_matmul_" + v.tag, gflops_per_rank / matmul_gflops, "of the fp32 matrix-product rate");
  if (s.comm->rank() == 0 && s.comm->size() > 1)
    report("comm_wait_fraction_" + v.tag, waits.max().item<double>(), "of step time (max over ranks)");
}

void bench_sampling(Session& s, bool bf16) {
  const auto& cfg = s.cfg;
  model::UNet net(cfg.model);
  net->to(s.ctx.device());
  net->eval();
  model::Diffusion diffusion(cfg.diffusion);
  auto sample_cfg = cfg;
  sample_cfg.sample.sampler = "ddim";
  sample_cfg.sample.steps = std::min(5, cfg.diffusion.timesteps);
  sample_cfg.sample.num_samples = cfg.sample.batch_size * s.comm->size();
  const auto eps = model::eps_model(net, s.ctx.device(), bf16);
  const double sec = median_seconds(1, 3, [&] {
    eval::sample_distributed(*s.comm, eps, diffusion, sample_cfg, s.ctx.device());
    s.comm->barrier();
  });
  report(std::string("sample_img_steps_per_s_") + (bf16 ? "bf16" : "fp32"),
         sample_cfg.sample.num_samples * sample_cfg.sample.steps / sec,
         "img-steps/s (batch " + std::to_string(cfg.sample.batch_size) + " per rank, " + std::to_string(s.comm->size()) +
             " rank(s))");
}

}  // namespace

void cmd_bench(Session& s, const std::vector<std::string>& parts) {
  const auto& cfg = s.cfg;
  auto want = [&](const char* part) {
    return parts.empty() || std::find(parts.begin(), parts.end(), part) != parts.end();
  };
  const bool bf16_ok = model::bf16_supported(s.ctx.device());
  double matmul_gflops = 0;
  if (want("matmul")) {
    const int n = 1024;
    auto a = torch::randn({n, n}), b = torch::randn({n, n});
    const double sec = median_seconds(2, 9, [&] { torch::mm(a, b); });
    matmul_gflops = 2.0 * n * n * n / sec / 1e9;
    report("matmul_gflops", matmul_gflops, "GFLOP/s per rank (fp32 1024^3)");
    if (bf16_ok) {
      auto a16 = a.to(torch::kBFloat16), b16 = b.to(torch::kBFloat16);
      const double sec16 = median_seconds(2, 9, [&] { torch::mm(a16, b16); });
      report("matmul_gflops_bf16", 2.0 * n * n * n / sec16 / 1e9, "GFLOP/s per rank (bf16 1024^3)");
    }
  }
  if (want("conv")) {
    // The U-Net's most common layer: 3x3, 2*base channels in and out, at 14x14, batch 64.
    const int64_t c = 2 * cfg.model.base_channels, b = 64, r = cfg.model.image_size / 2;
    torch::nn::Conv2d conv(torch::nn::Conv2dOptions(c, c, 3).padding(1));
    conv->to(s.ctx.device());
    auto x = torch::randn({b, c, r, r}, torch::TensorOptions().device(s.ctx.device()));
    const double flops = 2.0 * c * c * 9 * r * r * b;
    c10::InferenceMode guard;
    for (bool bf16 : {false, true}) {
      if (bf16 && !bf16_ok) continue;
      const double sec = median_seconds(2, 9, [&] {
        model::AutocastScope autocast(s.ctx.device(), bf16);
        conv(x);
      });
      report(std::string("conv3x3_gflops_") + (bf16 ? "bf16" : "fp32"), flops / sec / 1e9,
             "GFLOP/s per rank (" + std::to_string(c) + "->" + std::to_string(c) + " ch, " + std::to_string(r) + "x" +
                 std::to_string(r) + ", batch 64, forward)");
    }
  }
  const double forward_flops = model::UNet(cfg.model)->forward_flops();
  report("model_forward_gflop_per_image", forward_flops / 1e9, "GFLOP (convolutions, linear layers, attention)");
  report("model_train_gflop_per_image", 3 * forward_flops / 1e9, "GFLOP (forward + backward = 3x forward)");

  // Synthetic images: speed does not depend on the pixels.
  data::Dataset synthetic{torch::randint(0, 256, {4096, cfg.model.image_size, cfg.model.image_size}, torch::kUInt8),
                          torch::zeros({4096}, torch::kUInt8)};
  const std::vector<std::pair<const char*, TrainVariant>> variants{
      {"train", {"fp32", true, false, false}},
      {"no_overlap", {"fp32_no_overlap", false, false, false}},
      {"bf16", {"bf16", true, true, false}},
      {"channels_last", {"fp32_channels_last", true, false, true}},
  };
  for (const auto& [part, v] : variants) {
    if (!want(part) || (!v.overlap && s.comm->size() == 1)) continue;
    bench_training(s, synthetic, v, 3 * forward_flops, matmul_gflops);
  }
  if (want("sample")) bench_sampling(s, false);
  if (want("sample_bf16") && bf16_ok) bench_sampling(s, true);
}

}  // namespace ddpm::app
