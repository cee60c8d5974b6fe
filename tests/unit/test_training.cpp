#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <thread>

#include "config/config.hpp"
#include "data/mnist.hpp"
#include "dist/communicator.hpp"
#include "eval/posthoc_ema.hpp"
#include "io/checkpoint.hpp"
#include "io/h5.hpp"
#include "io/inspect.hpp"
#include "model/sampler.hpp"
#include "model/unet.hpp"
#include "train/trainer.hpp"
#include "util/clock.hpp"
#include "util/error.hpp"
#include "tiny_run.hpp"

using namespace ddpm;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("ddpm_test_" + std::to_string(::getpid()));
  ~TempDir() { fs::remove_all(path); }
};

}  // namespace

// 80 steps take the loss from ~0.6 to ~0.1 (0.17 of it when this was written); a model that
// does not learn (a broken gradient path, an update that is never taken) stays near 1.
TEST(Trainer, TinyModelOnMnistLowersTheLossClearly) {
  TempDir tmp;
  const auto cfg = tiny_config(tmp.path.string());
  dist::SelfCommunicator self;
  train::Trainer trainer(cfg, mnist(), torch::kCPU, self);
  constexpr int kSteps = 80, kWindow = 10;
  std::vector<double> losses;
  for (int i = 0; i < kSteps; ++i) trainer.train_step();
  for (const auto& s : trainer.read_agreements()) losses.push_back(s.loss);
  ASSERT_EQ(losses.size(), std::size_t{kSteps});
  auto mean = [&](int a, int b) {
    double s = 0;
    for (int i = a; i < b; ++i) s += losses[i];
    return s / (b - a);
  };
  const double first = mean(0, kWindow), last = mean(kSteps - kWindow, kSteps);
  std::cout << "mean loss, first " << kWindow << " steps " << first << ", last " << kWindow << " steps " << last << "\n";
  EXPECT_LT(last, 0.5 * first);
  EXPECT_EQ(trainer.step(), kSteps);
}

// Gradient accumulation: passes of train.micro_batch rows (5 into 32: six of 5 and one of 2) give
// the gradient and loss of one pass. The same float32 terms summed in another order: each
// gradient differs by rounding, a few 1e-7 of the sum of the terms' magnitudes; allowed 1e-5 of
// the norm.
TEST(Trainer, MicroBatchesGiveTheGradientOfOnePass) {
  TempDir tmp;
  auto cfg = tiny_config(tmp.path.string());
  auto first_step = [&](const config::Config& c) {
    dist::SelfCommunicator self;
    train::Trainer t(c, mnist(), torch::kCPU, self);
    t.train_step();
    std::vector<torch::Tensor> grads;
    for (const auto& p : t.model().parameters()) grads.push_back(p.grad().flatten().clone());
    return std::make_pair(torch::cat(grads), t.read_agreements().at(0).loss);
  };
  const auto [whole, whole_loss] = first_step(cfg);
  cfg.train.micro_batch = 5;
  const auto [parts, parts_loss] = first_step(cfg);
  EXPECT_GT(whole.norm().item<double>(), 0.0);
  EXPECT_LT((parts - whole).norm().item<double>(), 1e-5 * whole.norm().item<double>());
  EXPECT_NEAR(parts_loss, whole_loss, 1e-6 * whole_loss);
  // Another batch's gradient is far from it: the comparison can tell.
  cfg.run.seed = 6;
  EXPECT_GT((first_step(cfg).first - whole).norm().item<double>(), 1e-2 * whole.norm().item<double>());
}

TEST(Trainer, SameSeedGivesSameWeightsAndAnotherSeedDoesNot) {
  TempDir tmp;
  auto cfg = tiny_config(tmp.path.string());
  auto run = [&](const config::Config& c) {
    dist::SelfCommunicator self;
    train::Trainer t(c, mnist(), torch::kCPU, self);
    for (int i = 0; i < 3; ++i) t.train_step();
    return torch::cat({t.model().parameters().front().flatten(), t.model().parameters().back().flatten()});
  };
  const auto a = run(cfg), b = run(cfg);
  EXPECT_TRUE(torch::equal(a, b));
  cfg.run.seed = 6;
  EXPECT_FALSE(torch::equal(a, run(cfg)));
}

TEST(Sampler, ImagesDoNotDependOnHowTheyAreSplit) {
  TempDir tmp;
  const auto cfg = tiny_config(tmp.path.string());
  model::UNet net(cfg.model);
  net->eval();
  model::Diffusion d(cfg.diffusion);
  auto eps = d.denoiser([&](const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& labels) {
    return net->forward(x, t, labels);
  });
  auto whole = model::sample_images(eps, d, cfg.sample, {1, 28, 28}, {0, 6, 9}, torch::kCPU);
  EXPECT_EQ(whole.sizes(), (std::vector<int64_t>{6, 1, 28, 28}));
  EXPECT_LE(whole.abs().max().item<double>(), 1.0);
  // Batch size 4: ranges that start on a batch boundary reproduce the images bitwise.
  auto first = model::sample_images(eps, d, cfg.sample, {1, 28, 28}, {0, 4, 9}, torch::kCPU);
  auto second = model::sample_images(eps, d, cfg.sample, {1, 28, 28}, {4, 2, 9}, torch::kCPU);
  EXPECT_TRUE(torch::equal(torch::cat({first, second}), whole));
  auto other_seed = model::sample_images(eps, d, cfg.sample, {1, 28, 28}, {0, 6, 10}, torch::kCPU);
  EXPECT_FALSE(torch::equal(other_seed, whole));
  // Every draw (the starting noise at t = T, then one per stochastic step, eta 1) is made for the
  // whole global batch: a range that starts inside a batch gets its rows of the same draws. After
  // the first step the states may differ in the last bits (the network ran on another batch
  // size), far below the step's noise (sigma about 1 with eta 1 over 5 steps), which draws
  // that depended on the range would change entirely.
  std::vector<torch::Tensor> whole_states, part_states;
  auto record = [](std::vector<torch::Tensor>& into) {
    return [&into](std::int64_t, const torch::Tensor& x) { into.push_back(x.clone()); };
  };
  model::sample_images(eps, d, cfg.sample, {1, 28, 28}, {0, 6, 9}, torch::kCPU, nullptr, record(whole_states));
  model::sample_images(eps, d, cfg.sample, {1, 28, 28}, {1, 2, 9}, torch::kCPU, nullptr, record(part_states));
  ASSERT_EQ(whole_states.size(), 2 * part_states.size());  // two batches against one
  EXPECT_TRUE(torch::equal(part_states[0], whole_states[0].slice(0, 1, 3)));
  EXPECT_LT((part_states[1] - whole_states[1].slice(0, 1, 3)).abs().max().item<double>(), 1e-3);
  // Distinct rows and distinct batches draw distinct noise.
  EXPECT_FALSE(torch::equal(whole_states[0][0], whole_states[0][1]));
  const auto second_batch_noise = whole_states[whole_states.size() / 2];
  EXPECT_FALSE(torch::equal(second_batch_noise[0], whole_states[0][0]));
}

TEST(Checkpoint, RoundTripRestoresEveryTensorBitwise) {
  TempDir tmp;
  const auto cfg = tiny_config(tmp.path.string());
  dist::SelfCommunicator self;
  train::Trainer trainer(cfg, mnist(), torch::kCPU, self);
  for (int i = 0; i < 2; ++i) trainer.train_step();
  trainer.write_checkpoint();
  const auto path = io::latest_checkpoint(cfg.out_dir());
  ASSERT_TRUE(path.has_value());
  EXPECT_EQ(*path, io::checkpoint_path(cfg.out_dir(), 2));
  model::UNet live(cfg.model), ema(cfg.model);
  // Adam's state read into zeros shaped as the trainer's: both moments and the step count come back.
  const auto written = trainer.adam_state();
  io::AdamState adam;
  for (const auto& [name, t] : written.exp_avg) adam.exp_avg.emplace_back(name, torch::zeros_like(t));
  for (const auto& [name, t] : written.exp_avg_sq) adam.exp_avg_sq.emplace_back(name, torch::zeros_like(t));
  const auto info = io::read_checkpoint(*path, *live, *ema, &adam);
  EXPECT_EQ(adam.steps, 2);
  ASSERT_EQ(adam.exp_avg.size(), written.exp_avg.size());
  for (std::size_t i = 0; i < adam.exp_avg.size(); ++i) {
    EXPECT_TRUE(torch::equal(adam.exp_avg[i].second, written.exp_avg[i].second)) << adam.exp_avg[i].first;
    EXPECT_TRUE(torch::equal(adam.exp_avg_sq[i].second, written.exp_avg_sq[i].second)) << adam.exp_avg_sq[i].first;
  }
  EXPECT_GT(written.exp_avg_sq.front().second.abs().sum().item<double>(), 0.0);
  EXPECT_EQ(info.ema_updates, 2);
  EXPECT_EQ(info.world_size, 1);
  EXPECT_EQ(info.step, 2);
  EXPECT_EQ(info.config_yaml, cfg.yaml);
  auto a = trainer.model().parameters(), b = live->parameters();
  auto ea = trainer.ema_model().parameters(), eb = ema->parameters();
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(torch::equal(a[i], b[i]));
    EXPECT_TRUE(torch::equal(ea[i], eb[i]));
  }
  // Another architecture is refused with the names and shapes that differ.
  auto other = cfg.model;
  other.base_channels = 16;
  model::UNet wide(other), wide_ema(other);
  try {
    io::read_checkpoint(*path, *wide, *wide_ema);
    FAIL() << "a checkpoint of another architecture was accepted";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("a file of another architecture"), std::string::npos) << msg;
    EXPECT_NE(msg.find("model/conv_in.weight: file has [8, 1, 3, 3], model has [16, 1, 3, 3]"), std::string::npos)
        << msg;
  }
  // A checkpoint written before 2026-12-06 holds the step count once per parameter, in a group.
  {
    H5::H5File file(*path, H5F_ACC_RDWR);
    auto optim = file.openGroup("optim");
    optim.unlink("step");
    auto steps = optim.createGroup("step");
    for (const auto& [name, t] : written.exp_avg) io::write_tensor(steps, name, torch::tensor({7}, torch::kInt64));
  }
  io::AdamState old = adam;
  io::read_checkpoint(*path, *live, *ema, &old);
  EXPECT_EQ(old.steps, 7);
}

namespace {

struct Snapshot {
  std::vector<torch::Tensor> model, ema, exp_avg, exp_avg_sq;
  std::vector<std::int64_t> adam_steps;
};

Snapshot snapshot(train::Trainer& t) {
  Snapshot s;
  for (const auto& p : t.model().parameters()) s.model.push_back(p.detach().clone());
  s.exp_avg.push_back(t.optimizer().exp_avg().clone());
  s.exp_avg_sq.push_back(t.optimizer().exp_avg_sq().clone());
  s.adam_steps.push_back(t.optimizer().steps());
  for (const auto& p : t.ema_model().parameters()) s.ema.push_back(p.detach().clone());
  return s;
}

bool bitwise_equal(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!torch::equal(a[i], b[i])) return false;
  return true;
}

}  // namespace

TEST(Resume, StoppingAndResumingIsBitwiseTheStraightRun) {
  TempDir tmp;
  // Dropout on: its masks must also continue exactly; so must post-hoc EMA's averages.
  auto cfg = tiny_config(tmp.path.string());
  cfg.model.dropout = 0.1;
  cfg.train.phema_sigma_rels = {0.05, 0.10};
  const int K = 3;
  dist::SelfCommunicator self;
  train::Trainer straight(cfg, mnist(), torch::kCPU, self);
  for (int i = 0; i < 2 * K; ++i) straight.train_step();

  {
    train::Trainer first(cfg, mnist(), torch::kCPU, self);
    for (int i = 0; i < K; ++i) first.train_step();
    first.write_checkpoint();
  }
  train::Trainer resumed(cfg, mnist(), torch::kCPU, self);
  resumed.resume(io::checkpoint_path(cfg.out_dir(), K));
  EXPECT_EQ(resumed.step(), K);
  for (int i = 0; i < K; ++i) resumed.train_step();

  const auto a = snapshot(straight), b = snapshot(resumed);
  EXPECT_TRUE(bitwise_equal(a.model, b.model));
  EXPECT_TRUE(bitwise_equal(a.ema, b.ema));
  EXPECT_TRUE(bitwise_equal(a.exp_avg, b.exp_avg));
  EXPECT_TRUE(bitwise_equal(a.exp_avg_sq, b.exp_avg_sq));
  EXPECT_EQ(a.adam_steps, b.adam_steps);
  EXPECT_EQ(b.adam_steps.front(), 2 * K);
  ASSERT_EQ(resumed.power_emas().size(), 2u);
  for (std::size_t k = 0; k < 2; ++k) {
    EXPECT_TRUE(torch::equal(straight.power_emas()[k].values(), resumed.power_emas()[k].values())) << k;
    EXPECT_EQ(resumed.power_emas()[k].updates(), 2 * K);
  }
}

// Post-hoc EMA's snapshots: written at every train.phema_snapshot_every steps, each the averages
// as they were at its step; a run that tracks other averages cannot continue from the checkpoint.
TEST(Resume, PowerEmaSnapshotsHoldTheAveragesOfTheirStep) {
  TempDir tmp;
  auto cfg = tiny_config(tmp.path.string());
  cfg.train.steps = 6;
  cfg.train.phema_sigma_rels = {0.05, 0.10};
  cfg.train.phema_snapshot_every = 2;
  cfg.train.checkpoint_every = 3;
  dist::SelfCommunicator self;
  train::Trainer trainer(cfg, mnist(), torch::kCPU, self);
  ASSERT_EQ(trainer.run(), train::Trainer::Outcome::Finished);
  const auto like = io::named_tensors(trainer.model());
  io::Named params(like.begin(), like.begin() + static_cast<std::ptrdiff_t>(trainer.model().parameters().size()));
  const auto snaps = io::read_power_ema_snapshots(cfg.out_dir(), params);
  ASSERT_EQ(snaps.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(snaps[i].step, 2 * std::int64_t(i + 1));
    ASSERT_EQ(snaps[i].emas.size(), 2u);
    EXPECT_EQ(snaps[i].emas[1].sigma_rel, 0.10);
    EXPECT_EQ(snaps[i].emas[1].updates, snaps[i].step);
  }
  const auto states = trainer.power_ema_states();
  for (std::size_t k = 0; k < 2; ++k)
    for (std::size_t j = 0; j < params.size(); ++j)
      EXPECT_TRUE(torch::equal(snaps[2].emas[k].values[j].second, states[k].values[j].second)) << k << " " << j;
  EXPECT_FALSE(torch::equal(snaps[0].emas[0].values[0].second, snaps[2].emas[0].values[0].second));
  // Every file ddpm_dist writes opens with inspect: the snapshot, and the checkpoint names its averages.
  const auto shown = io::describe(snaps[1].path);
  EXPECT_NE(shown.find("post-hoc EMA snapshot\n  step 4, complete"), std::string::npos) << shown;
  EXPECT_NE(shown.find("power-function EMAs for post-hoc EMA: sigma_rel 0.05, 0.1 (4 updates)"), std::string::npos)
      << shown;
  const auto checkpoint = io::describe(io::checkpoint_path(cfg.out_dir(), 6));
  EXPECT_NE(checkpoint.find("sigma_rel 0.05, 0.1 (6 updates)"), std::string::npos) << checkpoint;
  // Post-hoc EMA at a length the run tracked is that average (every other coefficient ~0); one
  // between them is near both; a run without snapshots says what to set.
  model::UNet rebuilt(cfg.model);
  const auto exact = eval::load_posthoc_ema(cfg.out_dir(), 0.10, 6, *rebuilt);
  EXPECT_EQ(exact.step, 6);
  EXPECT_EQ(exact.averages, 6);
  EXPECT_LT(exact.residual, 1e-8);
  const auto tracked = states[1].values;
  const auto got = io::named_tensors(*rebuilt);
  for (std::size_t j = 0; j < params.size(); ++j)
    EXPECT_LT((got[j].second - tracked[j].second).abs().max().item<double>(),
              1e-5 * (1e-3 + tracked[j].second.abs().max().item<double>()))
        << got[j].first;
  const auto between = eval::load_posthoc_ema(cfg.out_dir(), 0.07, -1, *rebuilt);
  EXPECT_EQ(between.step, 6);
  EXPECT_LT(between.residual, 0.1);
  try {
    eval::load_posthoc_ema((tmp.path / "nothing").string(), 0.1, -1, *rebuilt);
    FAIL() << "reconstructed from no snapshots";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("train with train.phema_sigma_rels"), std::string::npos) << e.what();
  }

  auto other = config::parse(cfg.yaml, "other.yaml", {"train.phema_sigma_rels=[0.2]"});
  train::Trainer refused(other, mnist(), torch::kCPU, self);
  try {
    refused.resume(io::checkpoint_path(cfg.out_dir(), 6));
    FAIL() << "continued a run whose power-function EMAs are others";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("holds the power-function EMAs [0.05, 0.1], and train.phema_sigma_rels is [0.2]"),
              std::string::npos)
        << e.what();
  }
}

// A checkpoint of another model or noise schedule is refused, naming the keys; a longer run is not.
TEST(Resume, ACheckpointOfAnotherScheduleIsRefusedAndMoreStepsAreNot) {
  TempDir tmp;
  auto cfg = tiny_config(tmp.path.string());
  dist::SelfCommunicator self;
  {
    train::Trainer first(cfg, mnist(), torch::kCPU, self);
    first.train_step();
    first.write_checkpoint();
  }
  const auto path = io::checkpoint_path(cfg.out_dir(), 1);
  auto other = config::parse(cfg.yaml, "changed.yaml", {"diffusion.timesteps=500", "diffusion.schedule=cosine"});
  train::Trainer refused(other, mnist(), torch::kCPU, self);
  try {
    refused.resume(path);
    FAIL() << "resumed a checkpoint of another noise schedule";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("diffusion.timesteps: 1000 in the checkpoint, 500 in changed.yaml"), std::string::npos) << msg;
    EXPECT_NE(msg.find("diffusion.schedule: linear in the checkpoint, cosine in changed.yaml"), std::string::npos) << msg;
  }
  auto longer = config::parse(cfg.yaml, "longer.yaml", {"train.steps=400", "train.lr=1e-3"});
  train::Trainer resumed(longer, mnist(), torch::kCPU, self);
  resumed.resume(path);
  EXPECT_EQ(resumed.step(), 1);
}

// The evaluation hook runs on the steps that are multiples of eval.every, with a training wall time
// that does not count the evaluations before it.
TEST(Trainer, EvaluationRunsEveryNStepsAndIsLeftOutOfTheTrainingTime) {
  TempDir tmp;
  auto cfg = tiny_config(tmp.path.string());
  cfg.train.steps = 6;
  cfg.train.log_every = 6;
  dist::SelfCommunicator self;
  train::Trainer trainer(cfg, mnist(), torch::kCPU, self);
  std::vector<std::int64_t> steps;
  std::vector<double> walls;
  // Each evaluation moves the loop's clock on by 1000 s instead of spending them.
  trainer.set_evaluation(2, [&](std::int64_t step, double wall) {
    steps.push_back(step);
    walls.push_back(wall);
    LoopClock::advance(1000.0);
  });
  EXPECT_EQ(trainer.run(), train::Trainer::Outcome::Finished);
  EXPECT_EQ(steps, (std::vector<std::int64_t>{2, 4, 6}));
  // Had the evaluations counted, each wall time would exceed the one before by more than 1000 s;
  // two steps of this model take a small fraction of that on any machine.
  for (std::size_t i = 1; i < walls.size(); ++i) EXPECT_LT(walls[i] - walls[i - 1], 1000.0) << i;
}

// Linear warm-up, then constant or a cosine from lr to lr_min at the last step.
TEST(Trainer, LearningRateScheduleMatchesItsClosedForm) {
  TempDir tmp;
  auto cfg = tiny_config(tmp.path.string());
  cfg.train.steps = 110;
  cfg.train.warmup_steps = 10;
  cfg.train.lr = 2e-3;
  dist::SelfCommunicator self;
  {
    train::Trainer constant(cfg, mnist(), torch::kCPU, self);
    EXPECT_DOUBLE_EQ(constant.lr_at(0), 2e-4);
    EXPECT_DOUBLE_EQ(constant.lr_at(9), 2e-3);
    EXPECT_DOUBLE_EQ(constant.lr_at(109), 2e-3);
  }
  cfg.train.lr_schedule = "cosine";
  cfg.train.lr_min = 2e-5;
  train::Trainer cosine(cfg, mnist(), torch::kCPU, self);
  EXPECT_DOUBLE_EQ(cosine.lr_at(4), 1e-3);  // warm-up unchanged
  EXPECT_NEAR(cosine.lr_at(10), 2e-3, 1e-15);
  // Step 43 is a third of the way from the first step after warm-up (10) to the last (109).
  EXPECT_NEAR(cosine.lr_at(10 + 33), 2e-5 + (2e-3 - 2e-5) * 0.5 * (1 + std::cos(M_PI / 3)), 1e-15);
  EXPECT_NEAR(cosine.lr_at(109), 2e-5, 1e-15);
}

// "Step" means steps done, for the log, the checkpoint, Adam and the EMA alike, and the epoch is
// that of the last step done: on 64 examples in batches of 32, two steps end epoch 0.
TEST(Checkpoint, StepAndEpochAreThoseOfTheLastStepDone) {
  TempDir tmp;
  const auto cfg = tiny_config(tmp.path.string());
  const data::Dataset small{mnist().images.slice(0, 0, 64), mnist().labels.slice(0, 0, 64)};
  dist::SelfCommunicator self;
  train::Trainer trainer(cfg, small, torch::kCPU, self);
  for (int i = 0; i < 2; ++i) trainer.train_step();
  EXPECT_EQ(trainer.epoch(), 0);
  trainer.write_checkpoint();
  model::UNet live(cfg.model), ema(cfg.model);
  const auto info = io::read_checkpoint(io::checkpoint_path(cfg.out_dir(), 2), *live, *ema);
  EXPECT_EQ(info.step, 2);
  EXPECT_EQ(info.epoch, 0);
  EXPECT_EQ(info.ema_updates, 2);
  EXPECT_EQ(trainer.optimizer().steps(), 2);
  trainer.train_step();
  EXPECT_EQ(trainer.epoch(), 1);
}

TEST(Checkpoint, DamagedFilesAreRefusedClearly) {
  TempDir tmp;
  const auto cfg = tiny_config(tmp.path.string());
  dist::SelfCommunicator self;
  train::Trainer trainer(cfg, mnist(), torch::kCPU, self);
  trainer.write_checkpoint();
  const auto good = io::checkpoint_path(cfg.out_dir(), 0);
  model::UNet live(cfg.model), ema(cfg.model);
  auto message = [&](const std::string& path) {
    try {
      io::read_checkpoint(path, *live, *ema);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  // Truncated to half its size.
  const auto truncated = (tmp.path / "truncated.h5").string();
  fs::copy_file(good, truncated);
  fs::resize_file(truncated, fs::file_size(good) / 2);
  EXPECT_NE(message(truncated).find(truncated), std::string::npos) << message(truncated);
  EXPECT_NE(message(truncated).find("truncated or corrupt"), std::string::npos) << message(truncated);
  // Not HDF5 at all.
  const auto text = (tmp.path / "notes.h5").string();
  std::ofstream(text) << "not a checkpoint\n";
  EXPECT_NE(message(text).find("not an HDF5 file"), std::string::npos) << message(text);
  EXPECT_NE(message((tmp.path / "missing.h5").string()).find("no such file"), std::string::npos);
  // The newest readable checkpoint is found past a damaged newer one.
  fs::copy_file(truncated, io::checkpoint_path(cfg.out_dir(), 9));
  std::vector<std::string> skipped;
  EXPECT_EQ(io::latest_checkpoint(cfg.out_dir(), &skipped), good);
  ASSERT_EQ(skipped.size(), 1u);
  EXPECT_NE(skipped[0].find("step_00000009.h5"), std::string::npos) << skipped[0];
}

TEST(Checkpoint, OnlyTheNewestAreKept) {
  TempDir tmp;
  auto cfg = tiny_config(tmp.path.string());
  cfg.train.keep_checkpoints = 2;
  dist::SelfCommunicator self;
  train::Trainer trainer(cfg, mnist(), torch::kCPU, self);
  for (int i = 0; i < 3; ++i) {
    trainer.train_step();
    trainer.write_checkpoint();
  }
  EXPECT_FALSE(fs::exists(io::checkpoint_path(cfg.out_dir(), 1)));
  EXPECT_TRUE(fs::exists(io::checkpoint_path(cfg.out_dir(), 2)));
  EXPECT_TRUE(fs::exists(io::checkpoint_path(cfg.out_dir(), 3)));
}
