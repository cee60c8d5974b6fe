#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "model/ema.hpp"
#include "model/dropout.hpp"
#include "model/unet.hpp"

#include "tiny_model.hpp"

using namespace ddpm;


TEST(UNet, DefaultModelHasSeedParameterCount) {
  model::UNet net(config::ModelConfig{});
  const auto n = net->parameter_count();
  EXPECT_GE(n, 1'600'000);
  EXPECT_LE(n, 1'700'000);
}

TEST(UNet, OutputHasInputShapeAndGradientsReachEveryParameter) {
  model::UNet net(tiny_model());
  auto x = torch::randn({3, 1, 28, 28});
  auto out = net->forward(x, torch::tensor({0, 10, 999}));
  EXPECT_EQ(out.sizes(), x.sizes());
  out.pow(2).mean().backward();
  for (const auto& p : net->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << p.key();
  }
}

TEST(UNet, TimestepEmbeddingIsSinCosOfScaledTime) {
  auto e = model::timestep_embedding(torch::tensor({0, 5}), 8);
  ASSERT_EQ(e.sizes(), (std::vector<int64_t>{2, 8}));
  for (int i = 0; i < 4; ++i) {
    const double f = std::exp(-std::log(10000.0) * i / 4);
    EXPECT_NEAR(e[1][i].item<double>(), std::sin(5 * f), 1e-5);
    EXPECT_NEAR(e[1][4 + i].item<double>(), std::cos(5 * f), 1e-5);
    EXPECT_NEAR(e[0][4 + i].item<double>(), 1.0, 1e-6);
  }
}

TEST(KeyedDropout, ZeroesAShareOfPAndKeepsTheMean) {
  const double p = 0.25;
  const std::int64_t rows = 100, n = 10'000;
  auto x = torch::full({rows, n}, 2.0, torch::requires_grad());
  auto keys = model::dropout_row_keys(3, 0, 0, rows, torch::kCPU);
  auto y = model::keyed_dropout(x, p, keys, 0, true);
  // Binomial share of zeros over 1e6 elements: 4.3e-4 standard deviation, so 3e-3 is about 7 sigma.
  EXPECT_NEAR((y == 0).to(torch::kFloat64).mean().item<double>(), p, 3e-3);
  // Every row has its own mask, each with about p zeros (1e4 elements: sigma 4.3e-3, 7 sigma).
  const auto row_share = (y == 0).to(torch::kFloat64).mean(1);
  EXPECT_LT((row_share - p).abs().max().item<double>(), 0.03);
  EXPECT_TRUE(torch::allclose(y.masked_select(y != 0), torch::full({1}, 2.0 / (1 - p))));
  // The gradient is the same mask and scale.
  y.sum().backward();
  EXPECT_TRUE(torch::equal(x.grad(), y.detach() / 2.0));
  // Evaluation, or p = 0: the input itself.
  EXPECT_TRUE(model::keyed_dropout(x, p, keys, 0, false).is_same(x));
  EXPECT_TRUE(model::keyed_dropout(x, 0.0, keys, 0, true).is_same(x));
}

// What makes results independent of the number of ranks and of the split: a row's mask is a
// function of its key, the layer and the element, and of nothing else.
TEST(KeyedDropout, ARowsMaskDependsOnlyOnItsKeyAndLayerNotOnTheBatchOrTheGenerator) {
  const double p = 0.1;
  auto x = torch::ones({12, 4, 7, 7});
  const auto all = model::dropout_row_keys(9, 17, 0, 12, torch::kCPU);
  torch::manual_seed(1);
  const auto whole = model::keyed_dropout(x, p, all, 3, true);
  // Rows 5..8 computed alone (another rank's slice), after other draws from the default generator.
  torch::manual_seed(2);
  torch::rand({1000});
  const auto slice = model::keyed_dropout(x.slice(0, 5, 9), p, model::dropout_row_keys(9, 17, 5, 9, torch::kCPU), 3, true);
  EXPECT_TRUE(torch::equal(slice, whole.slice(0, 5, 9)));
  // Another layer, another step or another seed: other masks.
  EXPECT_FALSE(torch::equal(model::keyed_dropout(x, p, all, 4, true), whole));
  EXPECT_FALSE(torch::equal(model::keyed_dropout(x, p, model::dropout_row_keys(9, 18, 0, 12, torch::kCPU), 3, true), whole));
  EXPECT_FALSE(torch::equal(model::keyed_dropout(x, p, model::dropout_row_keys(8, 17, 0, 12, torch::kCPU), 3, true), whole));
  // Rows differ from one another.
  EXPECT_FALSE(torch::equal(whole[0], whole[1]));
}

TEST(Ema, UpdateFollowsDecayArithmeticWithWarmup) {
  auto live = torch::nn::Linear(2, 1), shadow = torch::nn::Linear(2, 1);
  model::Ema ema(*live, *shadow, 0.9);
  EXPECT_DOUBLE_EQ(ema.decay_at(0), 0.1);        // (1+0)/(10+0)
  EXPECT_DOUBLE_EQ(ema.decay_at(10), 11.0 / 20);  // still warming up
  EXPECT_DOUBLE_EQ(ema.decay_at(1000), 0.9);      // capped by the configured decay
  {
    torch::NoGradGuard g;
    live->weight.fill_(1.0);
    shadow->weight.fill_(0.0);
  }
  ema.update(*live);  // d = 0.1: 0.1 * 0 + 0.9 * 1
  EXPECT_NEAR(shadow->weight[0][0].item<double>(), 0.9, 1e-7);
  {
    torch::NoGradGuard g;
    live->weight.fill_(3.0);
  }
  ema.update(*live);  // d = 2/11: 2/11 * 0.9 + 9/11 * 3
  EXPECT_NEAR(shadow->weight[0][0].item<double>(), 2.0 / 11 * 0.9 + 9.0 / 11 * 3.0, 1e-6);
  EXPECT_EQ(ema.updates(), 2);
}

// The half-life as a share of training: h_t = max(1, s t) updates, decay_t = 0.5^(1 / h_t); after
// h_t updates at that decay, a weight's share in the average has halved.
TEST(Ema, AShareGivesAHalfLifeThatGrowsWithTraining) {
  auto live = torch::nn::Linear(2, 1), shadow = torch::nn::Linear(2, 1);
  model::Ema ema(*live, *shadow, 0.999, 0.1);
  EXPECT_DOUBLE_EQ(ema.decay_at(0), 0.5);      // h = 1 while s t < 1
  EXPECT_DOUBLE_EQ(ema.decay_at(10), 0.5);     // s t = 1
  EXPECT_NEAR(ema.decay_at(1000), std::pow(0.5, 1.0 / 100), 1e-15);
  EXPECT_NEAR(std::pow(ema.decay_at(20000), 2000), 0.5, 1e-12);  // h = 2000 at t = 20000
  // The fixed decay ignores the share when it is 0 (today's behaviour).
  model::Ema fixed(*live, *shadow, 0.999, 0.0);
  EXPECT_DOUBLE_EQ(fixed.decay_at(1000000), 0.999);
}
