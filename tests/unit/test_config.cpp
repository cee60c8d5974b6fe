#include <gtest/gtest.h>

#include "config/config.hpp"
#include "util/error.hpp"

using namespace ddpm;

namespace {
std::string error_of(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  try {
    config::parse(yaml, "test.yaml", overrides);
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}
#define EXPECT_CONTAINS(hay, needle) EXPECT_NE((hay).find(needle), std::string::npos) << (hay)
}  // namespace

TEST(Config, RepositoryConfigsParse) {
  for (const char* name : {"smoke.yaml", "mnist.yaml", "mnist_cpu.yaml"}) {
    const auto c = config::load(std::string(DDPM_SOURCE_DIR) + "/configs/" + name);
    EXPECT_FALSE(c.yaml.empty()) << name;
  }
}

TEST(Config, ValuesAndOverridesAreApplied) {
  const auto c = config::parse("run: {name: x}\ntrain: {lr: 0.5, batch_size: 64}\nmodel: {channel_mult: [1, 2]}",
                               "t.yaml", {"train.lr=1e-3", "sample.sampler=ddpm", "sample.steps=1000"});
  EXPECT_DOUBLE_EQ(c.train.lr, 1e-3);
  EXPECT_EQ(c.train.batch_size, 64);
  EXPECT_EQ(c.model.channel_mult, (std::vector<int>{1, 2}));
  EXPECT_EQ(c.sample.sampler, "ddpm");
  EXPECT_EQ(c.out_dir(), "results/x");
  // The resolved YAML holds every key, and parses back to the same values.
  const auto again = config::parse(c.yaml, "resolved");
  EXPECT_EQ(again.yaml, c.yaml);
}

TEST(Config, UnknownKeyNamesFileKeyAndNearestKey) {
  const auto msg = error_of("train:\n  warmup_step: 10\n");
  EXPECT_CONTAINS(msg, "test.yaml:2:3");
  EXPECT_CONTAINS(msg, "unknown key 'train.warmup_step'");
  EXPECT_CONTAINS(msg, "did you mean 'train.warmup_steps'");
  EXPECT_CONTAINS(error_of("train:\n  batchsize: 3\n"), "did you mean 'train.batch_size'");
  EXPECT_CONTAINS(error_of("trian:\n  steps: 3\n"), "unknown section 'trian'; did you mean 'train'");
  EXPECT_CONTAINS(error_of("", {"train.stpes=3"}), "--set train.stpes: unknown key");
}

TEST(Config, WrongTypesSayWhatIsExpected) {
  EXPECT_CONTAINS(error_of("train:\n  batch_size: abc\n"), "test.yaml:2:15: key 'train.batch_size' must be an integer, got 'abc'");
  EXPECT_CONTAINS(error_of("train:\n  batch_size: 1.5\n"), "must be an integer");
  EXPECT_CONTAINS(error_of("train:\n  lr: fast\n"), "key 'train.lr' must be a number");
  EXPECT_CONTAINS(error_of("model:\n  channel_mult: 2\n"), "key 'model.channel_mult' must be a list of integers");
  EXPECT_CONTAINS(error_of("run:\n  seed: -3\n"), "key 'run.seed' must be an integer");
  EXPECT_CONTAINS(error_of("sample:\n  clip_x0: maybe\n"), "must be true or false");
  EXPECT_CONTAINS(error_of("train: [1, 2]\n"), "section 'train' must be a mapping");
}

TEST(Config, ImpossibleValuesSayWhatIsAllowed) {
  EXPECT_CONTAINS(error_of("diffusion: {timesteps: 1}"), "key 'diffusion.timesteps' must be >= 2, got 1");
  EXPECT_CONTAINS(error_of("diffusion: {beta_start: 0.02, beta_end: 0.01}"), "key 'diffusion.beta_end' must be in (beta_start, 1)");
  EXPECT_CONTAINS(error_of("train: {batch_size: 0}"), "key 'train.batch_size' must be >= 1, got 0");
  EXPECT_CONTAINS(error_of("train: {lr: -1}"), "key 'train.lr' must be > 0");
  EXPECT_CONTAINS(error_of("model: {channel_mult: []}"), "key 'model.channel_mult' must list at least one");
  EXPECT_CONTAINS(error_of("sample: {sampler: euler}"), "key 'sample.sampler' is 'euler'; allowed: ddpm, ddim");
  EXPECT_CONTAINS(error_of("train: {precision: fp16}"), "key 'train.precision' is 'fp16'; allowed: fp32, bf16, auto");
  EXPECT_CONTAINS(error_of("sample: {precision: half}"), "key 'sample.precision' is 'half'; allowed: fp32, bf16, auto");
  EXPECT_CONTAINS(error_of("train: {max_bad_steps: -1}"), "key 'train.max_bad_steps' must be >= 0");
  EXPECT_CONTAINS(error_of("sample: {sampler: ddpm, steps: 50}"), "use sampler: ddim for fewer steps");
  EXPECT_CONTAINS(error_of("model: {base_channels: 12, groups: 8}"), "key 'model.groups' must divide");
  EXPECT_CONTAINS(error_of("sample: {eta: 2}"), "key 'sample.eta' must be in [0, 1]");
  EXPECT_CONTAINS(error_of("run: {collective_timeout_s: -1}"), "key 'run.collective_timeout_s' must be >= 0 seconds");
  EXPECT_CONTAINS(error_of("train: {on_write_error: retry}"), "key 'train.on_write_error' is 'retry'; allowed: stop, continue");
}

TEST(Config, SyntaxErrorsGiveLineAndColumn) {
  EXPECT_CONTAINS(error_of("train:\n  steps: [1, 2\n"), "test.yaml:3:");
  EXPECT_CONTAINS(error_of("train:\n  steps: [1, 2\n"), "YAML syntax error");
  EXPECT_CONTAINS(error_of("", {"train.lr"}), "expected section.key=value");
}

TEST(Config, MissingFileSaysWhereConfigsAre) {
  try {
    config::load("/nonexistent/x.yaml");
    FAIL();
  } catch (const Error& e) {
    EXPECT_CONTAINS(std::string(e.what()), "/nonexistent/x.yaml: cannot open");
  }
}
