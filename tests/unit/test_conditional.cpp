// Class-conditional generation: the label embedding, label dropout, the labels asked for when
// sampling, classifier-free guidance, the conditional accuracy, and checkpoints of the other kind.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>

#include "config/config.hpp"
#include "eval/metrics.hpp"
#include "eval/sample_grid.hpp"
#include "io/checkpoint.hpp"
#include "io/png.hpp"
#include "model/guidance.hpp"
#include "model/precision.hpp"
#include "model/sampler.hpp"
#include "model/unet.hpp"
#include "train/step_draws.hpp"
#include "util/error.hpp"

using namespace ddpm;
namespace fs = std::filesystem;

namespace {

config::Config conditional(const std::string& extra = "") {
  return config::parse(
      "model: {base_channels: 8, channel_mult: [1, 2], num_res_blocks: 1, attention_resolutions: [], groups: 4, "
      "dropout: 0.0, num_classes: 10}\n"
      "train: {batch_size: 64, label_dropout: 0.1}\n"
      "sample: {sampler: ddim, steps: 4, batch_size: 4}\n" +
          extra,
      "cond");
}

config::Config unconditional() {
  return config::parse(
      "model: {base_channels: 8, channel_mult: [1, 2], num_res_blocks: 1, attention_resolutions: [], groups: 4, "
      "dropout: 0.0}\n"
      "train: {batch_size: 64}\n"
      "sample: {sampler: ddim, steps: 4, batch_size: 4}\n",
      "uncond");
}

torch::Tensor longs(std::vector<std::int64_t> v) { return torch::tensor(v, torch::kLong); }

// A conditional U-Net with the initial weights of `seed`, in evaluation mode.
model::UNet conditional_net(std::uint64_t seed) {
  torch::manual_seed(seed);
  model::UNet net(conditional().model);
  net->eval();
  return net;
}

}  // namespace

TEST(Conditional, TheLabelChangesTheOutputAndNoLabelIsClassTen) {
  auto net = conditional_net(1);
  torch::NoGradGuard no_grad;
  const auto x = torch::randn({3, 1, 28, 28});
  const auto t = longs({5, 500, 900});
  const auto as_seven = net->forward(x, t, longs({7, 7, 7}));
  const auto as_one = net->forward(x, t, longs({1, 1, 1}));
  EXPECT_GT((as_seven - as_one).abs().max().item<double>(), 1e-3);
  // Undefined labels are "no class", the embedding's extra row.
  EXPECT_TRUE(torch::equal(net->forward(x, t), net->forward(x, t, longs({10, 10, 10}))));
  // An unconditional U-Net refuses labels rather than ignoring them.
  model::UNet plain(unconditional().model);
  EXPECT_THROW(plain->forward(x, t, longs({1, 2, 3})), Error);
}

TEST(Conditional, TheOtherWeightsStartAsThoseOfTheUnconditionalModel) {
  torch::manual_seed(2);
  model::UNet cond(conditional().model);
  torch::manual_seed(2);
  model::UNet plain(unconditional().model);
  const auto a = cond->named_parameters(), b = plain->named_parameters();
  ASSERT_EQ(a.size(), b.size() + 1);
  for (const auto& p : b) EXPECT_TRUE(torch::equal(a[p.key()], p.value())) << p.key();
  EXPECT_EQ(a["class_emb.weight"].sizes(), (std::vector<std::int64_t>{11, 32}));
}

// The share of rows trained as "no class" is a binomial count: over n = 200 steps x 64 rows at
// p = 0.1 its standard deviation is sqrt(p (1 - p) / n) = 0.0027; allowed 5 of them.
TEST(LabelDropout, DropsTheConfiguredShareOfRows) {
  const auto cfg = conditional();
  model::Diffusion d(cfg.diffusion);
  std::int64_t dropped = 0, rows = 0;
  for (std::int64_t step = 0; step < 200; ++step) {
    const auto draws = train::draw_step(d, cfg, step, 0, 64, torch::kCPU);
    ASSERT_TRUE(draws.no_label.defined());
    dropped += draws.no_label.sum().item<std::int64_t>();
    rows += draws.no_label.numel();
  }
  const double share = double(dropped) / double(rows);
  EXPECT_NEAR(share, 0.1, 5 * std::sqrt(0.1 * 0.9 / double(rows))) << dropped << " of " << rows;
}

TEST(LabelDropout, DrawsDoNotDependOnTheSplitAndLeaveTheNoiseAsItWas) {
  const auto cfg = conditional();
  model::Diffusion d(cfg.diffusion);
  const auto whole = train::draw_step(d, cfg, 17, 0, 64, torch::kCPU);
  for (std::int64_t cut : {1, 21, 32, 63}) {
    const auto a = train::draw_step(d, cfg, 17, 0, cut, torch::kCPU);
    const auto b = train::draw_step(d, cfg, 17, cut, 64, torch::kCPU);
    EXPECT_TRUE(torch::equal(torch::cat({a.no_label, b.no_label}), whole.no_label)) << cut;
    EXPECT_TRUE(torch::equal(torch::cat({a.t, b.t}), whole.t)) << cut;
    EXPECT_TRUE(torch::equal(torch::cat({a.eps, b.eps}), whole.eps)) << cut;
  }
  // Another step draws another mask.
  EXPECT_FALSE(torch::equal(train::draw_step(d, cfg, 18, 0, 64, torch::kCPU).no_label, whole.no_label));
  // The noise levels and noise are those an unconditional run draws: label dropout comes after them.
  const auto plain = train::draw_step(d, unconditional(), 17, 0, 64, torch::kCPU);
  EXPECT_FALSE(plain.no_label.defined());
  EXPECT_TRUE(torch::equal(plain.t, whole.t));
  EXPECT_TRUE(torch::equal(plain.eps, whole.eps));
}

TEST(SampleLabels, BalancedCoversEachClassEquallyInAFixedOrder) {
  config::LabelChoice balanced;
  const auto labels = model::sample_labels(balanced, 10, 0, 0, 1000);
  EXPECT_TRUE(torch::equal(torch::bincount(labels, {}, 10), torch::full({10}, 100, torch::kLong)));
  // 1005 images: counts differ by at most one.
  const auto counts = torch::bincount(model::sample_labels(balanced, 10, 0, 0, 1005), {}, 10);
  EXPECT_LE((counts.max() - counts.min()).item<std::int64_t>(), 1);
  EXPECT_EQ(counts.sum().item<std::int64_t>(), 1005);
  // Any range is a slice of the whole: the ranks' shares agree with one rank's labels.
  EXPECT_TRUE(torch::equal(model::sample_labels(balanced, 10, 0, 250, 125), labels.slice(0, 250, 375)));
  // The seed does not move a balanced order.
  EXPECT_TRUE(torch::equal(model::sample_labels(balanced, 10, 9, 0, 1000), labels));
}

TEST(SampleLabels, RandomListAndNone) {
  config::LabelChoice random{"random", {}};
  const auto a = model::sample_labels(random, 10, 3, 0, 2000);
  EXPECT_TRUE(torch::equal(model::sample_labels(random, 10, 3, 500, 100), a.slice(0, 500, 600)));
  EXPECT_FALSE(torch::equal(model::sample_labels(random, 10, 4, 0, 2000), a));
  EXPECT_GE(a.min().item<std::int64_t>(), 0);
  EXPECT_LE(a.max().item<std::int64_t>(), 9);
  // Each class's count is binomial(2000, 0.1): mean 200, standard deviation 13.4; allowed 5 of them.
  const auto counts = torch::bincount(a, {}, 10);
  EXPECT_LT((counts - 200).abs().max().item<std::int64_t>(), 67) << counts;

  config::LabelChoice sevens{"list", {7}};
  EXPECT_TRUE(torch::equal(model::sample_labels(sevens, 10, 0, 0, 64), torch::full({64}, 7, torch::kLong)));
  config::LabelChoice pair{"list", {3, 5}};
  EXPECT_TRUE(torch::equal(model::sample_labels(pair, 10, 0, 1, 4), longs({5, 3, 5, 3})));
  config::LabelChoice none{"none", {}};
  EXPECT_TRUE(torch::equal(model::sample_labels(none, 10, 0, 0, 5), torch::full({5}, 10, torch::kLong)));
  // An unconditional model asks for no labels.
  EXPECT_FALSE(model::sample_labels(random, 0, 0, 0, 5).defined());
}

// The doubled batch is the two halves' formula: the same network outputs, but the conditional and
// unconditional rows pass through the convolutions in a batch of twice the size, whose fp32 sums
// may be blocked otherwise. Each output then carries a relative error of a few 1e-7 per layer over
// ~20 layers; allowed 1e-5 of the outputs' scale times (1 + 2w), the weights of the two halves.
TEST(Guidance, TheDoubledBatchEqualsTwoSeparateCalls) {
  auto net = conditional_net(3);
  torch::NoGradGuard no_grad;
  const model::Diffusion d(conditional().diffusion);
  const auto D = d.denoiser(model::network(net, torch::kCPU, false));
  const auto labels = longs({0, 3, 7, 9});
  for (int t : {0, 250, 600, 999}) {
    // x = x_t / sqrt(abar_t) at sigma_t, from x_t of unit scale.
    const auto x = torch::randn({4, 1, 28, 28}) * std::sqrt(1 + d.sigma(t) * d.sigma(t));
    const auto cond = D(x, d.sigma(t), labels), uncond = D(x, d.sigma(t), torch::full({4}, 10, torch::kLong));
    const double scale = std::max(cond.abs().max().item<double>(), uncond.abs().max().item<double>());
    for (double w : {0.5, 1.0, 4.0}) {
      const auto guided = model::guided(D, w, 10)(x, d.sigma(t), labels);
      const auto expected = (1 + w) * cond - w * uncond;
      EXPECT_LT((guided - expected).abs().max().item<double>(), 1e-5 * (1 + 2 * w) * scale) << "w " << w << " t " << t;
    }
  }
}

TEST(Guidance, WeightZeroSamplesTheConditionalModel) {
  auto cfg = conditional();
  auto net = conditional_net(4);
  model::Diffusion d(cfg.diffusion);
  const auto labels = model::sample_labels(cfg.sample.labels, 10, 0, 0, 6);
  const auto conditional_model = d.denoiser(model::network(net, torch::kCPU, false));
  cfg.sample.guidance = 0.0;
  const auto a = model::sample_images(model::sampling_denoiser(net, d, cfg.sample, torch::kCPU), d, cfg.sample, {1, 28, 28},
                                      {0, 6, 5, labels}, torch::kCPU);
  const auto b = model::sample_images(conditional_model, d, cfg.sample, {1, 28, 28}, {0, 6, 5, labels}, torch::kCPU);
  EXPECT_TRUE(torch::equal(a, b));
  // A weight above zero moves the samples, and so do the labels.
  cfg.sample.guidance = 2.0;
  const auto c = model::sample_images(model::sampling_denoiser(net, d, cfg.sample, torch::kCPU), d, cfg.sample, {1, 28, 28},
                                      {0, 6, 5, labels}, torch::kCPU);
  EXPECT_GT((c - b).abs().max().item<double>(), 1e-3);
  const auto other = model::sample_images(conditional_model, d, cfg.sample, {1, 28, 28}, {0, 6, 5, (labels + 1) % 10},
                                          torch::kCPU);
  EXPECT_GT((other - b).abs().max().item<double>(), 1e-3);
}

// sample.guidance with a guide network: the guide's own D (here another prediction, eps against v)
// replaces the unconditional half; a guide that is the model itself changes nothing.
TEST(Guidance, AGuideNetworkReplacesTheUnconditionalHalfWithItsOwnPrediction) {
  auto cfg = conditional("diffusion: {prediction: v}\n");
  auto guide_cfg = conditional("diffusion: {prediction: eps}\n");
  auto net = conditional_net(5), guide = conditional_net(6);
  torch::NoGradGuard no_grad;
  const model::Diffusion d(cfg.diffusion), dg(guide_cfg.diffusion);
  const auto D = d.denoiser(model::network(net, torch::kCPU, false));
  const auto Dg = dg.denoiser(model::network(guide, torch::kCPU, false));
  const auto labels = longs({0, 3, 7, 9});
  const model::GuideNet other{guide, dg}, itself{net, d};
  for (int t : {0, 400, 999}) {
    const auto x = torch::randn({4, 1, 28, 28}) * std::sqrt(1 + d.sigma(t) * d.sigma(t));
    const auto main = D(x, d.sigma(t), labels), weak = Dg(x, d.sigma(t), labels);
    const double scale = std::max(main.abs().max().item<double>(), weak.abs().max().item<double>());
    for (double w : {0.5, 2.0}) {
      cfg.sample.guidance = w;
      const auto got = model::sampling_denoiser(net, d, cfg.sample, torch::kCPU, &other)(x, d.sigma(t), labels);
      EXPECT_LT((got - ((1 + w) * main - w * weak)).abs().max().item<double>(), 1e-5 * (1 + 2 * w) * scale)
          << "w " << w << " t " << t;
      const auto classifier_free = model::sampling_denoiser(net, d, cfg.sample, torch::kCPU)(x, d.sigma(t), labels);
      EXPECT_GT((got - classifier_free).abs().max().item<double>(), 1e-3);
      const auto same = model::sampling_denoiser(net, d, cfg.sample, torch::kCPU, &itself)(x, d.sigma(t), labels);
      EXPECT_LT((same - main).abs().max().item<double>(), 1e-5 * (1 + 2 * w) * scale) << "w " << w << " t " << t;
    }
  }
}

TEST(ConditionalAccuracy, CountsTheSamplesClassifiedAsAsked) {
  // Asked 0,0,1,1,2,10 (no class); predicted 0,1,1,1,0,4.
  const auto acc = eval::conditional_accuracy(longs({0, 1, 1, 1, 0, 4}), longs({0, 0, 1, 1, 2, 10}), 10);
  EXPECT_DOUBLE_EQ(acc.overall, 3.0 / 5.0);
  ASSERT_EQ(acc.per_class.size(), 10u);
  EXPECT_DOUBLE_EQ(acc.per_class[0], 0.5);
  EXPECT_DOUBLE_EQ(acc.per_class[1], 1.0);
  EXPECT_DOUBLE_EQ(acc.per_class[2], 0.0);
  EXPECT_TRUE(std::isnan(acc.per_class[3]));
}

TEST(SampleGrid, OneRowPerClassAskedFor) {
  // Image i is filled with 20 x its class: the grid's rows then read 0, 20, ..., 180.
  const auto labels = model::sample_labels(config::LabelChoice{}, 10, 0, 0, 200);
  const auto images = (labels * 20).to(torch::kUInt8).view({-1, 1, 1}).expand({200, 28, 28}).contiguous();
  const auto grid = eval::sample_grid(images, labels);
  const std::int64_t cell = 28 * io::kPictureScale + 1;  // enlarged, with a one-pixel border
  ASSERT_EQ(grid.size(0), 1 + 10 * cell);
  for (std::int64_t row = 0; row < 10; ++row)
    for (std::int64_t col = 0; col < 10; ++col)
      EXPECT_EQ(grid[1 + row * cell + 40][1 + col * cell + 40].item<int>(), 20 * row) << row << "," << col;
  // One class: the images in order, rows of ten.
  const auto sevens = torch::full({30}, 7, torch::kLong);
  EXPECT_EQ(eval::sample_grid(images.slice(0, 0, 30), sevens).size(0), 1 + 3 * cell);
}

// A checkpoint is refused by a model of the other kind, with the key to set and its value there.
TEST(Conditional, ACheckpointOfTheOtherKindIsRefusedWithTheKeyToSet) {
  const fs::path dir = fs::temp_directory_path() / ("ddpm_cond_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  struct Case {
    config::Config written, loading;
    std::string expected;
  };
  for (const auto& c : {Case{conditional(), unconditional(),
                             "model.num_classes: 10 in the checkpoint, 0 in uncond (the checkpoint's model is "
                             "class-conditional)"},
                        Case{unconditional(), conditional(),
                             "model.num_classes: 0 in the checkpoint, 10 in cond (the checkpoint's model is "
                             "unconditional)"}}) {
    model::UNet net(c.written.model), ema(c.written.model);
    const auto path = (dir / "step.h5").string();
    io::CheckpointInfo info;
    info.config_yaml = c.written.yaml;
    io::write_checkpoint(path, *net, *ema, nullptr, info);
    model::UNet other(c.loading.model), other_ema(c.loading.model);
    try {
      io::read_checkpoint(path, *other, *other_ema, nullptr, &c.loading);
      ADD_FAILURE() << "loaded a checkpoint of the other kind";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(c.expected), std::string::npos) << msg;
      EXPECT_NE(msg.find("--set 'model.num_classes="), std::string::npos) << msg;
    }
  }
  fs::remove_all(dir);
}
