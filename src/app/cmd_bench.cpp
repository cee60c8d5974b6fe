#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "app/commands.hpp"
#include "eval/distributed_sampling.hpp"
#include "eval/run_eval.hpp"
#include "model/cuda_graph.hpp"
#include "model/precision.hpp"
#include "model/sampler.hpp"
#include "model/unet.hpp"
#include "io/latent_cache.hpp"
#include "model/latent_space.hpp"
#include "train/diffusion_task.hpp"
#include "train/trainer.hpp"
#include "util/flat_tensors.hpp"

namespace ddpm::app {
namespace {

using clock = std::chrono::steady_clock;

double seconds_since(clock::time_point t) { return std::chrono::duration<double>(clock::now() - t).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Waits for the device's queued work, so that a host clock times what the GPU did.
void sync(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

// Median wall time of `repeats` calls after `warmup` untimed ones; `untimed` runs before each.
template <class F, class G = void (*)()>
double median_seconds(const torch::Device& device, int warmup, int repeats, F&& f, G&& untimed = [] {}) {
  for (int i = 0; i < warmup; ++i) f();
  sync(device);
  std::vector<double> t;
  for (int i = 0; i < repeats; ++i) {
    untimed();
    const auto a = clock::now();
    f();
    sync(device);
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
  bool graphs = false;
  bool balance = true;  // train.balance (CPU, more than one rank)
};

// Training throughput, achieved GFLOP/s and the share of step time spent waiting for gradient
// all-reduces (the slowest rank's share is what the job loses).
void bench_training(Session& s, const data::Dataset& synthetic, const io::LatentCache& latents, const TrainVariant& v,
                    double train_flops, double matmul_gflops) {
  auto cfg = s.cfg;
  cfg.train.overlap = v.overlap;
  cfg.train.precision = v.bf16 ? "bf16" : "fp32";
  cfg.train.cuda_graphs = v.graphs;
  cfg.train.balance = v.balance;
  auto task = std::make_unique<train::DiffusionTask>(cfg, synthetic, s.ctx.device(), latents);
  // Before the trainer lays the parameters end to end: their buffer keeps each one's layout.
  if (v.channels_last)
    for (auto& p : task->model().parameters())
      if (p.dim() == 4) p.set_data(p.data().contiguous(torch::MemoryFormat::ChannelsLast));
  train::Trainer trainer(cfg, std::move(task), s.ctx.device(), *s.comm);
  // resolve_bf16 and resolve_cuda_graphs said why
  if ((v.bf16 && !trainer.bf16()) || (v.graphs && !trainer.cuda_graphs())) return;
  // Warm-up includes the steps in which the balancer finds the split (two or three), each read at
  // once; then blocks of steps read at their end, as training reads them (every train.log_every
  // steps), so that a GPU's queue is timed, not the host's launches.
  const int warmup = 4, blocks = 3, block_steps = 5;
  for (int i = 0; i < warmup; ++i) {
    trainer.train_step();
    trainer.read_agreements();
  }
  const double wait_before = trainer.comm_wait_seconds();
  std::vector<double> times;
  const auto start = clock::now();
  for (int b = 0; b < blocks; ++b) {
    const auto a = clock::now();
    for (int i = 0; i < block_steps; ++i) trainer.train_step();
    trainer.read_agreements();
    times.push_back(seconds_since(a) / block_steps);
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
  if (trainer.balancer().enabled()) {
    const auto& rows = trainer.balancer().rows();
    const auto [lo, hi] = std::minmax_element(rows.begin(), rows.end());
    report("train_rows_max_over_min_" + v.tag, double(*hi) / double(*lo),
           "(rows per rank at the end: " + trainer.balancer().describe() + ")");
  }
}

// The update after backward, over whole buffers as the trainer does it (one clipping norm and
// multiply, train::Adam, the EMA in two operations), on the configured network's parameters with
// random gradients.
void bench_update(Session& s) {
  const auto device = s.ctx.device();
  auto build = [&] {
    auto net = model::UNet(config::unet_config(s.cfg));
    net->to(device);
    return net;
  };
  auto live = build(), shadow = build();
  const auto values = util::flat_buffer(live->parameters());
  auto grads = torch::randn_like(values);
  train::Adam adam(values, grads, {1e-4});
  model::Ema ema(*live, *shadow, 0.999);
  const double flat_s = median_seconds(device, 3, 21, [&] {
    train::clip_grad_norm(grads, 1.0);
    adam.step();
    ema.update(*live);
  });
  report("update_ms_flat", flat_s * 1e3,
         "ms (clipping, Adam and EMA over whole buffers, " + std::to_string(values.numel()) + " values)");
}

// The all-reduce itself, apart from the waiting for a slower rank that comm_wait_fraction also
// holds: every rank enters a barrier first, then one all-reduce of all gradients is timed.
void bench_allreduce(Session& s, model::UNet& net) {
  auto grads = torch::ones({net->parameter_count()}, torch::TensorOptions().device(s.ctx.device()));
  const double sec = median_seconds(
      s.ctx.device(), 2, 10, [&] { s.comm->allreduce_sum(grads); }, [&] { s.comm->barrier(); });
  report("allreduce_ms", sec * 1e3,
         "ms (all gradients, " + std::to_string(grads.nbytes() / 1000) + " kB fp32, in one all-reduce after a barrier)");
}

// Sampling throughput: a few DDIM steps over one batch per rank.
void bench_sampling(Session& s, model::UNet& net, const model::SampleSpace& space, const std::string& tag, bool bf16,
                    bool graphs) {
  const auto& cfg = s.cfg;
  model::Diffusion diffusion(cfg.diffusion);
  auto sample_cfg = cfg;
  sample_cfg.sample.sampler = "ddim";
  sample_cfg.sample.steps = std::min(5, cfg.diffusion.timesteps);
  sample_cfg.sample.num_samples = cfg.sample.batch_size * s.comm->size();
  const auto denoise = diffusion.denoiser(model::network(net, s.ctx.device(), bf16, graphs));
  const double sec = median_seconds(s.ctx.device(), 1, 3, [&] {
    eval::sample_distributed(*s.comm, denoise, diffusion, sample_cfg, s.ctx.device(), nullptr, &space);
    s.comm->barrier();
  });
  report("sample_img_steps_per_s_" + tag, sample_cfg.sample.num_samples * sample_cfg.sample.steps / sec,
         "img-steps/s (batch " + std::to_string(cfg.sample.batch_size) + " per rank, " + std::to_string(s.comm->size()) +
             " rank(s))");
}

// The sample section as configured (sampler, steps, images, precision, graphs), timed once.
void bench_sampling_as_configured(Session& s, model::UNet& net, const model::SampleSpace& space) {
  const auto& cfg = s.cfg;
  model::Diffusion diffusion(cfg.diffusion);
  // Autoguidance's cost with a guide of the model's size: the network itself stands in for it.
  const model::GuideNet self{net, diffusion};
  const auto denoise =
      model::sampling_denoiser(net, diffusion, cfg.sample, s.ctx.device(), cfg.sample.autoguided() ? &self : nullptr);
  const auto start = clock::now();
  eval::sample_distributed(*s.comm, denoise, diffusion, cfg, s.ctx.device(), nullptr, &space);
  s.comm->barrier();
  report("sample_configured_s", seconds_since(start),
         "s for " + std::to_string(cfg.sample.num_samples) + " images, " + cfg.sample.sampler + " x" +
             std::to_string(model::network_evaluations(cfg.sample, cfg.diffusion)) + ", " + cfg.sample.precision + (cfg.sample.cuda_graphs ? " with graphs" : "") +
             ", batch " + std::to_string(cfg.sample.batch_size) + " per rank, " + std::to_string(s.comm->size()) +
             " rank(s)");
}

// The training variants, by their part name.
const std::vector<std::pair<std::string, TrainVariant>>& train_variants() {
  static const std::vector<std::pair<std::string, TrainVariant>> variants{
      {"train", {"fp32", true, false, false}},
      {"no_overlap", {"fp32_no_overlap", false, false, false}},
      {"bf16", {"bf16", true, true, false}},
      {"unbalanced", {"fp32_unbalanced", true, false, false, false, false}},
      {"bf16_unbalanced", {"bf16_unbalanced", true, true, false, false, false}},
      {"channels_last", {"fp32_channels_last", true, false, true}},
      {"graphs", {"fp32_graphs", true, false, false, true}},
      {"bf16_graphs", {"bf16_graphs", true, true, false, true}},
  };
  return variants;
}

}  // namespace

const std::vector<std::string>& bench_parts() {
  static const std::vector<std::string> parts = [] {
    std::vector<std::string> p{"matmul", "conv", "allreduce", "update"};
    for (const auto& v : train_variants()) p.push_back(v.first);
    for (const char* sampling : {"sample", "sample_bf16", "sample_graphs", "sample_bf16_graphs", "sample_configured"})
      p.push_back(sampling);
    return p;
  }();
  return parts;
}

void cmd_bench(Session& s, const std::vector<std::string>& parts) {
  const auto& cfg = s.cfg;
  auto want = [&](const std::string& part) {
    return parts.empty() || std::find(parts.begin(), parts.end(), part) != parts.end();
  };
  const bool bf16_ok = model::bf16_supported(s.ctx.device());
  double matmul_gflops = 0;
  const auto device = s.ctx.device();
  if (want("matmul")) {
    // Large enough to reach the peak of the device at hand.
    const int n = device.is_cuda() ? 8192 : 1024;
    const std::string size = std::to_string(n) + "^3";
    auto a = torch::randn({n, n}, torch::TensorOptions().device(device)), b = torch::randn_like(a);
    const double sec = median_seconds(device, 2, 9, [&] { torch::mm(a, b); });
    matmul_gflops = 2.0 * n * n * n / sec / 1e9;
    report("matmul_gflops", matmul_gflops, "GFLOP/s per rank (fp32 " + size + ")");
    if (bf16_ok) {
      auto a16 = a.to(torch::kBFloat16), b16 = b.to(torch::kBFloat16);
      const double sec16 = median_seconds(device, 2, 9, [&] { torch::mm(a16, b16); });
      report("matmul_gflops_bf16", 2.0 * n * n * n / sec16 / 1e9, "GFLOP/s per rank (bf16 " + size + ")");
    }
  }
  if (want("conv")) {
    // The U-Net's most common layer: 3x3, 2*base channels in and out, at 14x14, batch 64.
    const int64_t c = 2 * cfg.model.base_channels, b = 64, r = cfg.model.image_size / 2;
    torch::nn::Conv2d conv(torch::nn::Conv2dOptions(c, c, 3).padding(1));
    conv->to(device);
    auto x = torch::randn({b, c, r, r}, torch::TensorOptions().device(device));
    const double flops = 2.0 * c * c * 9 * r * r * b;
    c10::InferenceMode guard;
    for (bool bf16 : {false, true}) {
      if (bf16 && !bf16_ok) continue;
      const double sec = median_seconds(device, 2, 9, [&] {
        model::AutocastScope autocast(device, bf16);
        conv(x);
      });
      report(std::string("conv3x3_gflops_") + (bf16 ? "bf16" : "fp32"), flops / sec / 1e9,
             "GFLOP/s per rank (" + std::to_string(c) + "->" + std::to_string(c) + " ch, " + std::to_string(r) + "x" +
                 std::to_string(r) + ", batch 64, forward)");
    }
  }
  model::UNet net(config::unet_config(cfg));
  const double forward_flops = net->forward_flops();
  report("model_forward_gflop_per_image", forward_flops / 1e9, "GFLOP (convolutions, linear layers, attention)");
  report("model_train_gflop_per_image", 3 * forward_flops / 1e9, "GFLOP (forward + backward = 3x forward)");

  // Synthetic images: speed does not depend on the pixels.
  data::Dataset synthetic{torch::randint(0, 256, {4096, cfg.model.image_size, cfg.model.image_size}, torch::kUInt8),
                          torch::zeros({4096}, torch::kUInt8)};
  // Latent space: synthetic posteriors of the latent shape; samples stay latents (no decoder).
  io::LatentCache latents;
  if (cfg.latent()) {
    auto shape = config::latent_shape(cfg);
    shape.insert(shape.begin(), synthetic.size());
    latents.images = synthetic.size();
    latents.mean = torch::randn(shape);
    latents.std = torch::full(shape, 0.5);
    const auto m = model::latent_moments(latents.mean, latents.std);
    latents.latent_mean = m.mean();
    latents.latent_std = m.std();
  }
  const model::SampleSpace space(config::diffusion_shape(cfg));
  if (want("allreduce") && s.comm->size() > 1) bench_allreduce(s, net);
  if (want("update")) bench_update(s);
  for (const auto& [part, v] : train_variants()) {
    if (!want(part) || ((!v.overlap || !v.balance) && s.comm->size() == 1)) continue;
    bench_training(s, synthetic, latents, v, 3 * forward_flops, matmul_gflops);
  }
  net->to(device);
  net->eval();
  const bool graphs_ok = model::cuda_graphs_supported(device);
  if (want("sample")) bench_sampling(s, net, space, "fp32", false, false);
  if (want("sample_bf16") && bf16_ok) bench_sampling(s, net, space, "bf16", true, false);
  if (want("sample_graphs") && graphs_ok) bench_sampling(s, net, space, "fp32_graphs", false, true);
  if (want("sample_bf16_graphs") && bf16_ok && graphs_ok) bench_sampling(s, net, space, "bf16_graphs", true, true);
  // Minutes on a CPU: only when asked for by name.
  if (std::find(parts.begin(), parts.end(), "sample_configured") != parts.end()) bench_sampling_as_configured(s, net, space);
}

}  // namespace ddpm::app
