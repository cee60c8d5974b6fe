#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <sstream>

#include "model/precision.hpp"
#include "model/unet.hpp"
#include "util/torch_compat.hpp"

#include "tiny_model.hpp"

using namespace ddpm;

// Closed form for a one-level U-Net without attention: base 8, one residual block, at 28x28.
TEST(UNetFlops, CountMatchesTheLayerShapesByHand) {
  config::ModelConfig m;
  m.base_channels = 8;
  m.channel_mult = {1};
  m.num_res_blocks = 1;
  m.attention_resolutions = {};
  m.mid_attention = false;
  m.groups = 4;
  const double hw = 28.0 * 28.0, temb = 32;  // time_embed_mult 4
  auto conv = [&](double in, double out, double k) { return 2 * in * out * k * k * hw; };
  auto res_block = [&](double in, double out) {
    return conv(in, out, 3) + conv(out, out, 3) + (in != out ? conv(in, out, 1) : 0.0) + 2 * temb * out;
  };
  const double expected = 2 * 8 * temb + 2 * temb * temb  // time embedding MLP
                          + conv(1, 8, 3)                 // conv_in
                          + res_block(8, 8)               // down
                          + 2 * res_block(8, 8)           // middle
                          + 2 * res_block(16, 8)          // up: two blocks, each with a skip concatenated
                          + conv(8, 1, 3);                // conv_out
  EXPECT_DOUBLE_EQ(model::UNet(m)->forward_flops(), expected);
}

TEST(UNetFlops, AttentionAddsItsProductsAndDownsamplingQuartersTheCost) {
  auto m = tiny_model();
  const double with = model::UNet(m)->forward_flops();
  m.attention_resolutions = {};
  const double without = model::UNet(m)->forward_flops();
  // Attention at 14x14 on 16 channels: qkv and proj 1x1 convs plus two [196 x 196 x 16] products,
  // in one down block and two up blocks.
  const double hw = 14.0 * 14.0, c = 16;
  const double one = 2 * c * 3 * c * hw + 2 * c * c * hw + 2 * (2 * hw * hw * c);
  EXPECT_DOUBLE_EQ(with - without, 3 * one);
  EXPECT_NEAR(model::UNet(config::ModelConfig{})->forward_flops() / 1e9, 0.62, 0.1)
      << "the seed's U-Net is about 0.6 GFLOP per image";
}

TEST(Precision, AutocastScopeTurnsBf16OnAndRestoresTheState) {
  const torch::Device cpu(torch::kCPU);
  ASSERT_FALSE(compat::autocast_enabled(c10::DeviceType::CPU));
  auto a = torch::randn({4, 4}), b = torch::randn({4, 4});
  {
    model::AutocastScope on(cpu, true);
    EXPECT_TRUE(compat::autocast_enabled(c10::DeviceType::CPU));
    EXPECT_EQ(torch::mm(a, b).scalar_type(), torch::kBFloat16);
  }
  EXPECT_FALSE(compat::autocast_enabled(c10::DeviceType::CPU));
  EXPECT_EQ(torch::mm(a, b).scalar_type(), torch::kFloat32);
  {
    model::AutocastScope off(cpu, false);
    EXPECT_EQ(torch::mm(a, b).scalar_type(), torch::kFloat32);
  }
}

// bf16 keeps ~3 significant digits: the network's output under autocast stays within a few
// percent of fp32, is fp32, and gradients still reach every parameter.
TEST(Precision, Bf16ForwardIsCloseToFp32AndTrains) {
  torch::manual_seed(0);
  model::UNet net(tiny_model());
  auto x = torch::randn({4, 1, 28, 28});
  auto t = torch::tensor({1, 100, 500, 999});
  torch::Tensor ref, low;
  {
    torch::NoGradGuard no_grad;
    ref = net->forward(x, t);
  }
  {
    model::AutocastScope autocast(torch::Device(torch::kCPU), true);
    low = net->forward(x, t);
  }
  EXPECT_EQ(low.scalar_type(), torch::kFloat32);
  const double rel = ((low - ref).norm() / ref.norm()).item<double>();
  EXPECT_LT(rel, 0.05);
  EXPECT_GT(rel, 0.0) << "autocast did not change the arithmetic";
  low.pow(2).mean().backward();
  for (const auto& p : net->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_EQ(p.value().grad().scalar_type(), torch::kFloat32) << p.key();
  }
}

// Against the operating system's own account of the CPU, read here, not through the code under test.
TEST(Precision, Fp32KeyNeverAsksForBf16AndAutoFollowsTheCpusBf16Flags) {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  bool has_bf16 = false;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line);
    for (std::string w; words >> w;) has_bf16 |= w == "avx512_bf16" || w == "amx_bf16";
    break;
  }
  const torch::Device cpu(torch::kCPU);
  std::cout << "this CPU " << (has_bf16 ? "has" : "has no") << " bf16 arithmetic (avx512_bf16 or amx_bf16)\n";
  EXPECT_FALSE(model::resolve_bf16("fp32", cpu, "train.precision"));
  EXPECT_EQ(model::resolve_bf16("bf16", cpu, "train.precision"), has_bf16);
  EXPECT_EQ(model::resolve_bf16("auto", cpu, "train.precision"), has_bf16);
  // On CUDA, auto stays fp32 (docs/journal/performance.md) and bf16 is honoured.
  EXPECT_FALSE(model::resolve_bf16("auto", torch::Device(torch::kCUDA, 0), "train.precision"));
  EXPECT_TRUE(model::resolve_bf16("bf16", torch::Device(torch::kCUDA, 0), "train.precision"));
}
