#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

#include "config/config.hpp"
#include "config/key_docs.hpp"
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
  for (const char* name : {"smoke.yaml", "mnist.yaml", "mnist_seed.yaml", "mnist_cpu.yaml", "mnist_cpu_pixel.yaml",
                           "mnist_cond.yaml", "mnist_latent.yaml"}) {
    const auto c = config::load(std::string(DDPM_SOURCE_DIR) + "/configs/" + name);
    EXPECT_FALSE(c.yaml.empty()) << name;
  }
}

// configs/mnist_cpu.yaml is configs/mnist_latent.yaml's model on the whole CPU budget: the two
// files must not drift apart in anything but the run's name, its length, its sampling steps, and
// the post-hoc EMA and autoguidance chosen on that budget (docs/posthoc_ema.md).
TEST(Config, CpuDefaultIsTheLatentConfigurationTrainedLonger) {
  const std::string dir = std::string(DDPM_SOURCE_DIR) + "/configs/";
  const auto latent = config::load(dir + "mnist_latent.yaml");
  const auto cpu = config::load(dir + "mnist_cpu.yaml");
  std::vector<std::string> keys;
  for (const auto& c : config::changed_keys(latent.yaml, cpu)) keys.push_back(c.key);
  std::sort(keys.begin(), keys.end());
  EXPECT_EQ(keys, (std::vector<std::string>{"eval.ema_sigma_rel", "eval.every", "run.name", "sample.guidance",
                                            "sample.guide_ema_sigma_rel", "sample.guide_step", "sample.steps",
                                            "sweep.ema_sigma_rels", "sweep.guidances", "sweep.guide_ema_sigma_rels",
                                            "sweep.guide_steps", "train.phema_sigma_rels",
                                            "train.phema_snapshot_every", "train.steps"}));
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

TEST(Config, ConditionalKeysParseRoundTripAndRefuseWhatCannotWork) {
  const std::string cond = "model: {num_classes: 10}\ntrain: {label_dropout: 0.1}\n";
  const auto c = config::parse(cond, "t.yaml", {"sample.labels=[7, 1]", "sample.guidance=2", "eval.guidance=[0, 0.5]"});
  EXPECT_EQ(c.sample.labels.mode, "list");
  EXPECT_EQ(c.sample.labels.classes, (std::vector<int>{7, 1}));
  EXPECT_DOUBLE_EQ(c.sample.guidance, 2.0);
  EXPECT_EQ(c.eval.guidance, (std::vector<double>{0.0, 0.5}));
  EXPECT_EQ(config::parse(c.yaml, "resolved").yaml, c.yaml);
  const auto r = config::parse(cond + "sample: {labels: random}", "t.yaml");
  EXPECT_EQ(r.sample.labels.mode, "random");
  EXPECT_EQ(config::parse(r.yaml, "resolved").sample.labels.mode, "random");

  EXPECT_CONTAINS(error_of("model: {num_classes: 5}"), "key 'model.num_classes' must be 0 (unconditional) or 10");
  EXPECT_CONTAINS(error_of("train: {label_dropout: 0.1}"),
                  "key 'train.label_dropout' applies to a class-conditional model; set model.num_classes: 10");
  EXPECT_CONTAINS(error_of(cond, {"train.label_dropout=1"}), "key 'train.label_dropout' must be in [0, 1)");
  EXPECT_CONTAINS(error_of("model: {num_classes: 10}\nsample: {guidance: 1}"),
                  "key 'sample.guidance' needs a guide: a class-conditional model trained with label dropout");
  EXPECT_CONTAINS(error_of(cond, {"sample.guidance=-1"}), "key 'sample.guidance' must be >= 0");
  EXPECT_CONTAINS(error_of("sample: {labels: [7]}"), "key 'sample.labels' asks for classes, but the model is unconditional");
  EXPECT_CONTAINS(error_of(cond, {"sample.labels=[12]"}), "key 'sample.labels' holds 12; classes are 0 to 9");
  EXPECT_CONTAINS(error_of(cond, {"sample.labels=sevens"}),
                  "key 'sample.labels' is 'sevens'; allowed: balanced, random, none");
  EXPECT_CONTAINS(error_of(cond, {"sample.labels=[]"}), "key 'sample.labels' must name at least one class");
  EXPECT_CONTAINS(error_of(cond, {"sample.labels=[a]"}), "key 'sample.labels' must be a list of integers");
  EXPECT_CONTAINS(error_of("eval: {guidance: [0, 1]}"), "key 'eval.guidance' needs a guide: a class-conditional model "
                                                         "trained with label dropout (model.num_classes: 10, "
                                                         "train.label_dropout: 0.1), or autoguidance");
  // Autoguidance guides any model, conditional or not.
  const auto a = config::parse("sample: {guidance: 1.5, guide_step: 400, guide_ema_sigma_rel: 0.05}\n"
                               "eval: {guidance: [0, 1]}\n", "t.yaml");
  EXPECT_TRUE(a.sample.autoguided());
  EXPECT_EQ(config::parse(a.yaml, "resolved").yaml, a.yaml);
  EXPECT_TRUE(config::parse("sample: {guide_run: results/small}", "t.yaml").sample.autoguided());
  EXPECT_CONTAINS(error_of("sample: {guide_step: -1}"), "key 'sample.guide_step' must be >= 0");
  EXPECT_CONTAINS(error_of("sample: {guide_ema_sigma_rel: 0.5}"), "key 'sample.guide_ema_sigma_rel' must be 0");
  EXPECT_CONTAINS(error_of(cond, {"eval.guidance=[1, x]"}), "key 'eval.guidance' must be a list of numbers");
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

// A key that was removed says what took its place, from a file and from --set.
TEST(Config, RetiredKeySaysWhatTookItsPlace) {
  const auto msg = error_of("sample:\n  use_ema: false\n");
  EXPECT_CONTAINS(msg, "test.yaml:2:3: 'sample.use_ema' is no longer a key: eval.weights (ema or raw) chooses");
  EXPECT_CONTAINS(msg, "remove it");
  EXPECT_CONTAINS(error_of("", {"sample.use_ema=true"}), "--set sample.use_ema: 'sample.use_ema' is no longer a key");
  EXPECT_CONTAINS(error_of("train: {micro_batch: -2}"), "key 'train.micro_batch' must be >= 0");
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
  EXPECT_CONTAINS(error_of("train: {weight_decay: -0.1}"), "key 'train.weight_decay' must be >= 0");
  EXPECT_CONTAINS(error_of("train: {lr: 0.1, weight_decay: 10}"), "train.lr x weight_decay < 1");
  EXPECT_CONTAINS(error_of("sample: {sampler: ddpm, steps: 50}"), "use sampler: ddim for fewer steps");
  EXPECT_CONTAINS(error_of("model: {base_channels: 12, groups: 8}"), "key 'model.groups' must divide");
  EXPECT_CONTAINS(error_of("sample: {eta: 2}"), "key 'sample.eta' must be in [0, 1]");
  EXPECT_CONTAINS(error_of("run: {collective_timeout_s: -1}"), "key 'run.collective_timeout_s' must be >= 0 seconds");
  EXPECT_CONTAINS(error_of("train: {on_write_error: retry}"), "key 'train.on_write_error' is 'retry'; allowed: stop, continue");
  EXPECT_CONTAINS(error_of("diffusion: {kind: vp}"), "key 'diffusion.kind' is 'vp'; allowed: ddpm, edm");
  EXPECT_CONTAINS(error_of("diffusion: {kind: edm, sigma_data: 0}"), "key 'diffusion.sigma_data' must be > 0");
  EXPECT_CONTAINS(error_of("diffusion: {kind: edm, p_std: -1}"), "key 'diffusion.p_std' must be > 0");
  EXPECT_CONTAINS(error_of("diffusion: {kind: edm, prediction: v}"), "key 'diffusion.prediction' applies to kind ddpm only");
  EXPECT_CONTAINS(error_of("diffusion: {kind: edm}\ntrain: {loss_weighting: min_snr}"),
                  "key 'train.loss_weighting' applies to diffusion.kind ddpm only");
}

TEST(Config, AutoencoderKeysAndTheirStage) {
  EXPECT_CONTAINS(error_of("autoencoder: {channel_mult: [1, 1, 2, 2]}"),
                  "key 'autoencoder.channel_mult' has 4 levels, and the 28x28 images do not halve exactly 3 times");
  EXPECT_CONTAINS(error_of("autoencoder: {kl_weight: -1}"), "key 'autoencoder.kl_weight' must be >= 0");
  EXPECT_CONTAINS(error_of("autoencoder: {latent_channels: 0}"), "key 'autoencoder.latent_channels' must be >= 1");
  EXPECT_CONTAINS(error_of("autoencoder: {base_channels: 12, groups: 8}"), "key 'autoencoder.groups' must divide");
  EXPECT_CONTAINS(error_of("autoencoder: {latent_channel: 4}"), "did you mean 'autoencoder.latent_channels'");
  // The stage trains with its own steps, batch and learning rate, in its own folder; the rest of
  // train.* is shared.
  const auto cfg = config::parse(
      "run: {name: lat}\nautoencoder: {steps: 300, batch_size: 32, lr: 5.0e-4}\n"
      "train: {steps: 9000, batch_size: 128, lr: 2.0e-3, lr_min: 1.0e-3, warmup_steps: 7, grad_clip: 0.5}\n",
      "test.yaml");
  const auto stage = config::autoencoder_stage(cfg);
  EXPECT_EQ(stage.train.steps, 300);
  EXPECT_EQ(stage.train.batch_size, 32);
  EXPECT_EQ(stage.train.lr, 5.0e-4);
  EXPECT_EQ(stage.train.lr_min, 5.0e-4);  // never above the stage's lr
  EXPECT_EQ(stage.train.warmup_steps, 7);
  EXPECT_EQ(stage.train.grad_clip, 0.5);
  EXPECT_EQ(stage.out_dir(), "results/lat/autoencoder");
  EXPECT_EQ(cfg.out_dir(), "results/lat");
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

// model.image_size and model.in_channels were validated and read by nothing (the data path is
// 1 x 28 x 28); they are no longer keys. data.dataset now picks the data folder and the classifier.
TEST(Config, DatasetPicksTheDataFolderAndTheClassifierAndGeometryKeysAreGone) {
  const auto mnist = config::parse("", "t.yaml");
  EXPECT_EQ(mnist.data_dir(), "data/mnist");
  EXPECT_EQ(mnist.classifier_path(), "results/classifier_mnist.h5");
  const auto fashion = config::parse("data: {dataset: fashion_mnist}", "t.yaml");
  EXPECT_EQ(fashion.data_dir(), "/usr/share/datasets/fashion-mnist");
  EXPECT_EQ(fashion.classifier_path(), "results/classifier_fashion_mnist.h5");
  const auto own = config::parse("data: {dataset: fashion_mnist, dir: /x}\neval: {classifier: /y.h5}", "t.yaml");
  EXPECT_EQ(own.data_dir(), "/x");
  EXPECT_EQ(own.classifier_path(), "/y.h5");
  EXPECT_CONTAINS(error_of("model: {image_size: 32}"), "unknown key 'model.image_size'");
  EXPECT_CONTAINS(error_of("model: {in_channels: 3}"), "unknown key 'model.in_channels'");
  EXPECT_CONTAINS(error_of("model: {channel_mult: [1, 2, 2, 2]}"), "do not halve exactly 3 times");
}

// The classifier's recipe is the data set's unless the keys say otherwise; a configuration file
// measured on one data set run on another is named with the file measured for it.
TEST(Config, TheDataSetGivesTheClassifiersRecipeAndAWarningForAFileMeasuredOnAnother) {
  const auto mnist = config::parse("", "t.yaml");
  EXPECT_EQ(mnist.classifier_epochs(), 3);
  EXPECT_EQ(mnist.classifier_augment(), "none");
  const auto fashion = config::parse("data: {dataset: fashion_mnist}", "t.yaml");
  EXPECT_EQ(fashion.classifier_epochs(), config::dataset_profile("fashion_mnist").classifier_epochs);
  EXPECT_EQ(fashion.classifier_augment(), "shift_flip");
  const auto own = config::parse("data: {dataset: fashion_mnist}\neval: {classifier_epochs: 2, classifier_augment: none}",
                                 "t.yaml");
  EXPECT_EQ(own.classifier_epochs(), 2);
  EXPECT_EQ(own.classifier_augment(), "none");
  EXPECT_CONTAINS(error_of("eval: {classifier_augment: rotate}"), "key 'eval.classifier_augment' is 'rotate'");
  EXPECT_CONTAINS(error_of("eval: {classifier_epochs: -1}"), "eval.classifier_epochs");

  const std::string dir = DDPM_SOURCE_DIR "/configs/";
  EXPECT_EQ(config::unmeasured_dataset_warning(config::load(dir + "mnist_cpu.yaml")), "");
  const auto moved = config::load(dir + "mnist_cpu.yaml", {"data.dataset=fashion_mnist"});
  const auto warning = config::unmeasured_dataset_warning(moved);
  EXPECT_CONTAINS(warning, "mnist_cpu.yaml was chosen by measurements on mnist");
  EXPECT_CONTAINS(warning, "the configuration measured on it is configs/fashion_cpu.yaml");
  // A file measured on no data set (a test's) gets no warning.
  EXPECT_EQ(config::unmeasured_dataset_warning(config::parse("data: {dataset: fashion_mnist}", "smoke.yaml")), "");
  // Every configuration a profile names exists and is for its data set.
  for (const auto& profile : config::dataset_profiles())
    for (const auto& file : profile.configs) EXPECT_EQ(config::load(dir + file).data.dataset, profile.name) << file;
}

TEST(Config, ChangedKeysListsWhatDiffersAndSkipsKeysOnlyOneSideHas) {
  const auto before = config::parse("diffusion: {timesteps: 1000}\ntrain: {steps: 10}", "a.yaml");
  const auto now = config::parse("diffusion: {timesteps: 100}\ntrain: {steps: 20}", "b.yaml",
                                 {"sample.steps=50"});
  // A key this version no longer has (model.image_size) in the stored text is left out.
  auto stored = before.yaml;
  stored.replace(stored.find("model:\n"), 7, "model:\n  image_size: 28\n");
  const auto changes = config::changed_keys(stored, now);
  std::vector<std::string> keys;
  for (const auto& c : changes) keys.push_back(c.key + ": " + c.before + " -> " + c.now);
  EXPECT_EQ(keys, (std::vector<std::string>{"diffusion.timesteps: 1000 -> 100", "train.steps: 10 -> 20"}));
}

// The README's configuration reference is what `ddpm_dist keys` prints from the key table: every
// key documented once, no key that is not one, and the same text.
TEST(Config, TheReadmeReferenceIsTheKeyTable) {
  std::ifstream in(std::string(DDPM_SOURCE_DIR) + "/README.md");
  ASSERT_TRUE(in) << "README.md not found";
  std::string line, table;
  bool inside = false;
  while (std::getline(in, line)) {
    if (line == "| key | default | meaning |") inside = true;
    if (inside && line.empty()) break;
    if (inside) table += line + "\n";
  }
  const auto reference = config::reference_table();
  EXPECT_EQ(table, reference) << "regenerate the README's table with: build/ddpm_dist keys";
  EXPECT_NE(reference.find("| `train.micro_batch` | 0 |"), std::string::npos);
}
