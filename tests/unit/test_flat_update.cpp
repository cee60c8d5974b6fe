// The update over flat buffers (util/flat_tensors.hpp, train/adam.hpp, model/ema.hpp) against the
// per-tensor reference it replaces (torch::optim::Adam / AdamW, the EMA as d x shadow + (1 - d) x
// live) on a tiny U-Net's tensors of many sizes, and against closed forms.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "model/ema.hpp"
#include "model/unet.hpp"
#include "tiny_model.hpp"
#include "train/adam.hpp"
#include "util/flat_tensors.hpp"

using namespace ddpm;

namespace {

model::UNet seeded_unet(int seed) {
  torch::manual_seed(seed);
  return model::UNet(tiny_model());
}

double max_abs_diff(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, (a[i] - b[i]).abs().max().item<double>());
  return m;
}

// K steps of the flat Adam and of torch's per-tensor one from the same weights and gradients;
// returns the largest difference of the parameters and the largest total movement of one.
template <class TorchOptimizer, class TorchOptions>
std::pair<double, double> against_torch(double weight_decay, int steps) {
  auto flat_net = seeded_unet(1), ref_net = seeded_unet(1);
  auto params = flat_net->parameters(), ref_params = ref_net->parameters();
  std::vector<torch::Tensor> start;
  for (const auto& p : params) start.push_back(p.detach().clone());
  const auto values = util::flat_buffer(params);
  auto grads = torch::zeros_like(values);
  const auto grad_views = util::views_of(grads, params);
  const double lr = 1e-2;
  train::Adam adam(values, grads, {lr, 0.9, 0.999, 1e-8, weight_decay});
  TorchOptimizer reference(ref_params, TorchOptions(lr).weight_decay(weight_decay));
  torch::manual_seed(7);
  for (int k = 0; k < steps; ++k) {
    for (std::size_t i = 0; i < params.size(); ++i) {
      // Gradients of very different sizes from tensor to tensor, as a real network's.
      const auto g = torch::randn_like(params[i]) * std::pow(10.0, double(i % 5) - 3.0);
      grad_views[i].copy_(g);
      ref_params[i].mutable_grad() = g.clone();
    }
    adam.step();
    reference.step();
  }
  EXPECT_EQ(adam.steps(), steps);
  return {max_abs_diff(params, ref_params), max_abs_diff(params, start)};
}

}  // namespace

// Tolerance. The arithmetic is elementwise and in the same order in both up to the step size
// (train/adam.cpp moves it and sqrt(1 - beta2^t) into the denominator: a few roundings more), and
// elsewhere a value differs only where one rounds differently: a vectorised loop body against its
// scalar tail (the compiler may fuse a multiply and an add there, and an element sits at another
// position of the vector in one buffer than in its own tensor), about an ulp per operation. Each
// step moves a parameter by lr x m / (sqrt(v) + eps), a ratio of moments of a few operations each: relative error ~1e-6 of a
// movement of at most ~lr x 3, plus an ulp of the parameter (~1: 1.2e-7). Over K = 5 steps at
// lr = 1e-2: 5 x 3e-2 x 1e-6 + 5 x 1.2e-7 ~ 8e-7; bound 2e-6, against movements of ~5e-2.
TEST(FlatAdam, MatchesTorchAdamToRounding) {
  const auto [diff, moved] = against_torch<torch::optim::Adam, torch::optim::AdamOptions>(0.0, 5);
  std::cout << "flat Adam against torch::optim::Adam after 5 steps: largest difference " << diff
            << ", largest movement " << moved << "\n";
  EXPECT_LT(diff, 2e-6);
  EXPECT_GT(moved, 1e-2);  // the steps did move the weights
}

TEST(FlatAdam, WithWeightDecayMatchesTorchAdamWToRounding) {
  const auto [diff, moved] = against_torch<torch::optim::AdamW, torch::optim::AdamWOptions>(0.1, 5);
  std::cout << "flat AdamW against torch::optim::AdamW after 5 steps: largest difference " << diff << "\n";
  EXPECT_LT(diff, 2e-6);
  EXPECT_GT(moved, 1e-2);
}

// A constant gradient g: m_t = g (1 - b1^t), v_t = g^2 (1 - b2^t), and each step moves a parameter
// by lr x g / (|g| + eps): about lr against the sign of g, short of it by eps / |g| relative.
TEST(FlatAdam, ConstantGradientFollowsTheClosedForm) {
  auto values = torch::zeros({5});
  auto grads = torch::tensor({0.5f, -2.0f, 1e-3f, -3e-2f, 4.0f});
  const double lr = 1e-3, b1 = 0.9, b2 = 0.999;
  train::Adam adam(values, grads, {lr, b1, b2, 1e-8, 0.0});
  const int K = 7;
  for (int k = 0; k < K; ++k) adam.step();
  // In float32 each moment carries at most two roundings a step (relative 2^-24 each) and the
  // update about six more: bounds of 2K and 4K + 8 roundings.
  const double u = std::ldexp(1.0, -24), eps = 1e-8;
  for (int i = 0; i < 5; ++i) {
    const double g = grads[i].item<double>();
    EXPECT_NEAR(adam.exp_avg()[i].item<double>(), g * (1 - std::pow(b1, K)), 2 * K * u * std::abs(g));
    EXPECT_NEAR(adam.exp_avg_sq()[i].item<double>(), g * g * (1 - std::pow(b2, K)), 2 * K * u * g * g);
    const double exact = -K * lr * g / (std::abs(g) + eps);
    EXPECT_NEAR(values[i].item<double>(), exact, (4 * K + 8) * u * std::abs(exact)) << i;
  }
  // AdamW's decay first scales the weights by 1 - lr x weight_decay each step: with zero
  // gradients (no Adam movement: m = 0) only that remains.
  auto w = torch::full({3}, 2.0f);
  auto zero = torch::zeros({3});
  train::Adam adamw(w, zero, {lr, b1, b2, 1e-8, 0.5});
  for (int k = 0; k < K; ++k) adamw.step();
  EXPECT_NEAR(w[0].item<double>(), 2.0 * std::pow(1 - lr * 0.5, K), 1e-6);
}

TEST(FlatTensors, TensorsBecomeViewsOfOneBufferKeepingValuesAndLayout) {
  auto a = torch::randn({3, 4}), b = torch::randn({2, 3, 5, 5}).contiguous(torch::MemoryFormat::ChannelsLast),
       c = torch::randn({7});
  const auto a0 = a.clone(), b0 = b.clone(), c0 = c.clone();
  const auto flat = util::flat_buffer({a, b, c});
  EXPECT_EQ(flat.numel(), 12 + 150 + 7);
  EXPECT_TRUE(torch::equal(a, a0) && torch::equal(b, b0) && torch::equal(c, c0));
  EXPECT_TRUE(b.is_contiguous(torch::MemoryFormat::ChannelsLast));
  // A write through the buffer shows in the tensors, at their stretches in order.
  flat.fill_(0).narrow(0, 12, 150).fill_(1);
  EXPECT_EQ(a.abs().sum().item<double>(), 0.0);
  EXPECT_EQ(b.sum().item<double>(), 150.0);
  // A second call finds the same buffer instead of moving them again.
  const auto again = util::flat_buffer({a, b, c});
  EXPECT_EQ(again.data_ptr(), flat.data_ptr());
  EXPECT_EQ(again.numel(), flat.numel());
  // Views of another buffer of that size are laid out alike.
  const auto other = torch::arange(flat.numel(), torch::kFloat32);
  const auto views = util::views_of(other, {a, b, c});
  EXPECT_EQ(views[1].strides(), b.strides());
  EXPECT_EQ(views[2][0].item<double>(), 162.0);
}

TEST(FlatTensors, MixedDtypesAreRefused) {
  EXPECT_THROW(util::flat_buffer({torch::zeros({2}), torch::zeros({2}, torch::kFloat64)}), c10::Error);
}

// The EMA over the buffer (d x shadow + w x live, w = 1 - d, two operations) against the same per
// tensor in double. Each update rounds d and w to float32 and the product d x shadow and the sum to
// float32: within ~2 ulp of the weights (|w| < 2 here: 2 x 1.2e-7 = 2.4e-7), and every earlier
// error shrinks by d at each update, so the error stays below 2.4e-7 / (1 - d) = 2.4e-6 for
// d = 0.9; bound 4e-6 (the errors are of random sign: the measured one is far smaller).
TEST(FlatEma, OneUpdateOverTheBufferMatchesThePerTensorAverage) {
  auto live = seeded_unet(3), shadow = seeded_unet(4);
  model::Ema ema(*live, *shadow, 0.9);
  std::vector<torch::Tensor> exact;
  for (const auto& p : live->parameters()) exact.push_back(p.detach().to(torch::kFloat64));
  torch::manual_seed(5);
  for (int k = 0; k < 20; ++k) {
    {
      torch::NoGradGuard no_grad;
      for (auto& p : live->parameters()) p.add_(torch::randn_like(p) * 0.1);
    }
    const double d = ema.decay_at(ema.updates());
    ema.update(*live);
    const auto params = live->parameters();
    for (std::size_t i = 0; i < params.size(); ++i)
      exact[i] = d * exact[i] + (1 - d) * params[i].detach().to(torch::kFloat64);
  }
  double diff = 0;
  const auto shadow_params = shadow->parameters();
  for (std::size_t i = 0; i < exact.size(); ++i)
    diff = std::max(diff, (shadow_params[i].to(torch::kFloat64) - exact[i]).abs().max().item<double>());
  std::cout << "EMA over 20 updates: largest difference from the exact average " << diff << "\n";
  EXPECT_LT(diff, 4e-6);
}

// A step skipped on the device (take = false) must leave the values, the moments and the step
// count exactly as they were, even with non-finite gradients (how a step comes to be skipped), and
// the steps after it must be exactly those of a run that never saw it: every factor of a skipped
// step is 1, every addend an exact zero (x * 1 = x and x + 0 = x in floating point), so equality
// is bitwise. The first step skipped too: the bias corrections must not divide by zero.
TEST(FlatAdam, ASkippedStepChangesNothingAndLaterStepsAreThoseOfARunWithoutIt) {
  const auto start = torch::randn({64}, torch::TensorOptions().dtype(torch::kFloat32));
  torch::manual_seed(3);
  std::vector<torch::Tensor> grads_at;
  for (int k = 0; k < 3; ++k) grads_at.push_back(torch::randn({64}));
  for (const double weight_decay : {0.0, 0.1}) {
    SCOPED_TRACE("weight_decay " + std::to_string(weight_decay));
    auto values = start.clone(), grads = torch::zeros({64});
    auto ref_values = start.clone(), ref_grads = torch::zeros({64});
    train::Adam adam(values, grads, {1e-2, 0.9, 0.999, 1e-8, weight_decay});
    train::Adam reference(ref_values, ref_grads, {1e-2, 0.9, 0.999, 1e-8, weight_decay});
    const auto skip = torch::zeros({}, torch::kBool), take = torch::ones({}, torch::kBool);
    grads.fill_(std::numeric_limits<float>::quiet_NaN());
    adam.step(skip);
    EXPECT_TRUE(torch::equal(values, start));
    EXPECT_EQ(adam.steps(), 0);
    for (int k = 0; k < 3; ++k) {
      grads.copy_(grads_at[k]);
      ref_grads.copy_(grads_at[k]);
      adam.step(take);
      reference.step();
      const auto before = values.clone(), m = adam.exp_avg().clone(), v = adam.exp_avg_sq().clone();
      grads.fill_(k == 1 ? -std::numeric_limits<float>::infinity() : std::numeric_limits<float>::quiet_NaN());
      adam.step(skip);
      EXPECT_TRUE(torch::equal(values, before)) << "step " << k;
      EXPECT_TRUE(torch::equal(adam.exp_avg(), m) && torch::equal(adam.exp_avg_sq(), v)) << "step " << k;
    }
    EXPECT_EQ(adam.steps(), 3);
    EXPECT_TRUE(torch::equal(values, ref_values));
    EXPECT_TRUE(torch::equal(adam.exp_avg(), reference.exp_avg()));
    EXPECT_FALSE(torch::equal(values, start));
  }
}

// The same for the EMA: a skipped update leaves the shadow and the update count (which sets the
// warm-up's decay) as they were, so the next update is bitwise that of an average without it.
TEST(FlatEma, ASkippedUpdateChangesNothing) {
  auto live = seeded_unet(3), shadow = seeded_unet(4), ref_shadow = seeded_unet(5);
  model::Ema ema(*live, *shadow, 0.9), reference(*live, *ref_shadow, 0.9);
  const auto skip = torch::zeros({}, torch::kBool), take = torch::ones({}, torch::kBool);
  const auto flat = [](model::UNet& net) { return util::flat_buffer(net->parameters()).clone(); };
  for (int k = 0; k < 3; ++k) {
    {
      torch::NoGradGuard no_grad;
      for (auto& p : live->parameters()) p.add_(torch::randn_like(p) * 0.1);
    }
    ema.update(*live, take);
    reference.update(*live);
    const auto before = flat(shadow);
    ema.update(*live, skip);
    EXPECT_TRUE(torch::equal(flat(shadow), before)) << "update " << k;
  }
  EXPECT_EQ(ema.updates(), 3);
  EXPECT_TRUE(torch::equal(flat(shadow), flat(ref_shadow)));
}
