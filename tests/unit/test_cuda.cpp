// The CUDA path, where a GPU is visible (skipped elsewhere): training data and steps on the device,
// CUDA-graph replays against the plain path, bf16 autocast against fp32.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <filesystem>

#include "config/config.hpp"
#include "dist/communicator.hpp"
#include "io/checkpoint.hpp"
#include "model/cuda_graph.hpp"
#include "model/precision.hpp"
#include "model/unet.hpp"
#include "tiny_model.hpp"
#include "train/trainer.hpp"

using namespace ddpm;

namespace {

#define REQUIRE_CUDA() \
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device visible"

const torch::Device kCuda(torch::kCUDA, 0);

config::Config train_config(bool graphs, const std::string& precision = "fp32", bool conditional = false) {
  config::Config c;
  c.model = tiny_model();
  if (conditional) {
    c.model.num_classes = 10;
    c.train.label_dropout = 0.3;
  }
  c.train.batch_size = 16;
  c.train.lr = 1e-3;
  c.train.warmup_steps = 0;
  c.train.cuda_graphs = graphs;
  c.train.precision = precision;
  return c;
}

const data::Dataset& synthetic() {
  torch::manual_seed(3);
  static const data::Dataset d{torch::randint(0, 256, {256, 28, 28}, torch::kUInt8), torch::zeros({256}, torch::kUInt8)};
  return d;
}

double rel_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).norm().item<double>() / b.to(torch::kFloat64).norm().item<double>();
}

torch::Tensor flat(const std::vector<torch::Tensor>& ts, bool grads) {
  std::vector<torch::Tensor> parts;
  for (const auto& t : ts) parts.push_back((grads ? t.grad() : t).detach().flatten().cpu());
  return torch::cat(parts);
}

model::UNet eval_net_on_cuda(uint64_t seed) {
  torch::manual_seed(seed);
  model::UNet net(tiny_model());
  net->to(kCuda);
  net->eval();
  return net;
}

}  // namespace

TEST(Cuda, TrainingRunsOnTheDeviceWithTheDataThere) {
  REQUIRE_CUDA();
  const auto cfg = train_config(false);
  dist::SelfCommunicator self;
  train::Trainer trainer(cfg, synthetic(), kCuda, self);
  const auto before = flat(trainer.model().parameters(), false);
  trainer.train_step();
  const auto stats = trainer.read_agreements().at(0);
  EXPECT_TRUE(std::isfinite(stats.loss));
  EXPECT_FALSE(stats.skipped);
  for (const auto& p : trainer.model().parameters()) ASSERT_TRUE(p.is_cuda());
  EXPECT_GT(rel_diff(flat(trainer.model().parameters(), false), before), 0.0);
}

// Same inputs, same kernels: the captured step must compute what the plain step does, and keep
// doing so on the new inputs of later steps (a conditional model's labels among them).
TEST(Cuda, GraphReplayOfTheTrainingStepMatchesThePlainStep) {
  REQUIRE_CUDA();
  dist::SelfCommunicator self;
  for (const bool conditional : {false, true}) {
    SCOPED_TRACE(conditional ? "conditional" : "unconditional");
    train::Trainer plain(train_config(false, "fp32", conditional), synthetic(), kCuda, self);
    train::Trainer graphed(train_config(true, "fp32", conditional), synthetic(), kCuda, self);
    ASSERT_TRUE(graphed.cuda_graphs());
    for (int step = 0; step < 4; ++step) {
      plain.train_step();
      graphed.train_step();
      const auto a = plain.read_agreements().at(0), b = graphed.read_agreements().at(0);
      EXPECT_NEAR(a.loss, b.loss, 1e-4 * std::abs(a.loss)) << "step " << step;
      EXPECT_NEAR(a.grad_norm, b.grad_norm, 1e-3 * a.grad_norm) << "step " << step;
      EXPECT_LT(rel_diff(flat(graphed.model().parameters(), true), flat(plain.model().parameters(), true)), 1e-3)
          << "gradients, step " << step;
    }
    EXPECT_LT(rel_diff(flat(graphed.model().parameters(), false), flat(plain.model().parameters(), false)), 1e-4);
    EXPECT_LT(rel_diff(flat(graphed.ema_model().parameters(), false), flat(plain.ema_model().parameters(), false)), 1e-4);
  }
}

// With graphs and dropout 0.1, a run stopped after K steps and resumed (capturing its graph at
// another step) must continue like the straight run: the masks are keyed by (seed, step, row),
// not drawn from a generator that capture and its warm-up advance.
TEST(Cuda, ResumeWithGraphsAndDropoutEqualsTheStraightRun) {
  REQUIRE_CUDA();
  const std::string dir = "/tmp/ddpm_cuda_resume_" + std::to_string(::getpid());
  auto cfg = train_config(true);
  cfg.model.dropout = 0.1;
  cfg.run.out_dir = dir;
  dist::SelfCommunicator self;
  const int K = 3;
  train::Trainer straight(cfg, synthetic(), kCuda, self);
  for (int i = 0; i < 2 * K; ++i) straight.train_step();
  {
    train::Trainer first(cfg, synthetic(), kCuda, self);
    for (int i = 0; i < K; ++i) first.train_step();
    first.write_checkpoint();
  }
  train::Trainer resumed(cfg, synthetic(), kCuda, self);
  resumed.resume(io::checkpoint_path(dir, K));
  for (int i = 0; i < K; ++i) resumed.train_step();
  // The same kernels on the same inputs: bitwise, or at worst the rounding of atomics in backward.
  EXPECT_LT(rel_diff(flat(resumed.model().parameters(), false), flat(straight.model().parameters(), false)), 1e-6);
  std::filesystem::remove_all(dir);
}

TEST(Cuda, Bf16GraphedTrainingStaysCloseToFp32) {
  REQUIRE_CUDA();
  dist::SelfCommunicator self;
  train::Trainer fp32(train_config(false), synthetic(), kCuda, self);
  train::Trainer bf16(train_config(true, "bf16"), synthetic(), kCuda, self);
  ASSERT_TRUE(bf16.bf16());
  for (int step = 0; step < 3; ++step) {
    fp32.train_step();
    bf16.train_step();
    const auto a = fp32.read_agreements().at(0), b = bf16.read_agreements().at(0);
    EXPECT_FALSE(b.skipped);
    EXPECT_NEAR(a.loss, b.loss, 0.05 * std::abs(a.loss)) << "step " << step;
  }
  for (const auto& p : bf16.model().parameters()) ASSERT_EQ(p.scalar_type(), torch::kFloat32);
}

TEST(Cuda, GraphedSamplingModelMatchesThePlainOneForEachBatchSize) {
  REQUIRE_CUDA();
  auto net = eval_net_on_cuda(1);
  const auto plain = model::network(net, kCuda, false, false);
  const auto graphed = model::network(net, kCuda, false, true);
  c10::InferenceMode guard;
  for (int64_t n : {6, 4, 6}) {
    auto x = torch::randn({n, 1, 28, 28}, kCuda);
    auto t = torch::randint(0, 1000, {n}, torch::TensorOptions().dtype(torch::kLong).device(kCuda));
    EXPECT_LT(rel_diff(graphed(x, t, {}), plain(x, t, {})), 1e-5) << "batch " << n;
  }
}

// Guidance around the graph: the doubled batch's labels are an input copied into the graph's
// buffer like x and t, so new labels at the same batch size must change what a replay computes.
TEST(Cuda, GraphedGuidedDenoiserMatchesThePlainOneWithEachCallsLabels) {
  REQUIRE_CUDA();
  torch::manual_seed(5);
  auto m = tiny_model();
  m.num_classes = 10;
  model::UNet net(m);
  net->to(kCuda);
  net->eval();
  const model::Diffusion d(config::DiffusionConfig{});
  config::SampleConfig cfg;
  cfg.guidance = 1.5;
  const auto plain = model::sampling_denoiser(net, d, cfg, kCuda);
  cfg.cuda_graphs = true;
  const auto graphed = model::sampling_denoiser(net, d, cfg, kCuda);
  c10::InferenceMode guard;
  const auto opts = torch::TensorOptions().dtype(torch::kLong).device(kCuda);
  for (int64_t n : {6, 4, 6}) {
    auto x = torch::randn({n, 1, 28, 28}, kCuda) * 5.0;
    auto labels = torch::randint(0, 10, {n}, opts);
    EXPECT_LT(rel_diff(graphed(x, d.sigma(300), labels), plain(x, d.sigma(300), labels)), 1e-5) << "batch " << n;
  }
}

TEST(Cuda, Bf16SamplingModelStaysCloseToFp32) {
  REQUIRE_CUDA();
  auto net = eval_net_on_cuda(2);
  c10::InferenceMode guard;
  auto x = torch::randn({8, 1, 28, 28}, kCuda);
  auto t = torch::randint(0, 1000, {8}, torch::TensorOptions().dtype(torch::kLong).device(kCuda));
  const auto fp32 = model::network(net, kCuda, false)(x, t, {});
  const auto bf16 = model::network(net, kCuda, true, true)(x, t, {});
  EXPECT_EQ(bf16.scalar_type(), torch::kFloat32);
  EXPECT_LT(rel_diff(bf16, fp32), 5e-2);
}

// Without CUDA, asking for graphs warns and runs the plain path: the same numbers.
TEST(CudaGraphs, OnCpuTheyAreIgnored) {
  EXPECT_FALSE(model::resolve_cuda_graphs(true, torch::kCPU, "train.cuda_graphs"));
  EXPECT_FALSE(model::resolve_cuda_graphs(false, torch::kCPU, "train.cuda_graphs"));
  dist::SelfCommunicator self;
  train::Trainer plain(train_config(false), synthetic(), torch::kCPU, self);
  train::Trainer asked(train_config(true), synthetic(), torch::kCPU, self);
  EXPECT_FALSE(asked.cuda_graphs());
  plain.train_step();
  asked.train_step();
  EXPECT_EQ(plain.read_agreements().at(0).loss, asked.read_agreements().at(0).loss);
}
