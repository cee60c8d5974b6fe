// One rule for the keys that define a checkpoint's weights (config::defines_diffusion and its
// siblings), applied by every reader: resume, sampling and evaluation (eval::load_trained), and the
// latent pipeline's autoencoder. A checkpoint read under other values of those keys is refused with
// each key, both values and the --set that fixes it; other keys may change.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <unistd.h>

#include <filesystem>

#include "config/config.hpp"
#include "latent/first_stage.hpp"
#include "eval/trained_model.hpp"
#include "io/checkpoint.hpp"
#include "model/autoencoder.hpp"
#include "model/unet.hpp"
#include "util/error.hpp"

using namespace ddpm;
namespace fs = std::filesystem;

namespace {

struct TempRun {
  fs::path dir = fs::temp_directory_path() / ("ddpm_provenance_" + std::to_string(::getpid()));
  TempRun() { fs::remove_all(dir); }
  ~TempRun() { fs::remove_all(dir); }
};

const std::string kBase =
    "model: {base_channels: 8, channel_mult: [1, 2], num_res_blocks: 1, attention_resolutions: [], groups: 4, "
    "dropout: 0.0}\n"
    "diffusion: {timesteps: 100, prediction: eps}\n"
    "autoencoder: {base_channels: 8, channel_mult: [1, 2], groups: 4}\n";

config::Config config_at(const std::string& dir, const std::vector<std::string>& overrides = {}) {
  auto all = overrides;
  all.push_back("run.out_dir=" + dir);
  return config::parse(kBase, "now.yaml", all);
}

// A diffusion checkpoint of `cfg` at step 1 in its run folder.
void write_unet_checkpoint(const config::Config& cfg) {
  model::UNet net(config::unet_config(cfg)), ema(config::unet_config(cfg));
  io::CheckpointInfo info;
  info.step = 1;
  info.config_yaml = cfg.yaml;
  fs::create_directories(cfg.out_dir() + "/checkpoints");
  io::write_checkpoint(io::checkpoint_path(cfg.out_dir(), 1), *net, *ema, nullptr, info);
}

std::string refusal(const std::function<void()>& read) {
  try {
    read();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Provenance, SamplingRefusesEachKeyThatDefinesTheWeights) {
  TempRun run;
  const auto dir = run.dir.string();
  write_unet_checkpoint(config_at(dir));
  struct Case {
    std::string set, expected;
  };
  for (const auto& c : {Case{"model.dropout=0.1", "model.dropout: 0"},
                        Case{"diffusion.prediction=v", "diffusion.prediction: eps in the checkpoint, v in now.yaml"},
                        Case{"diffusion.schedule=cosine", "diffusion.schedule: linear in the checkpoint, cosine in"},
                        Case{"diffusion.kind=edm", "diffusion.kind: ddpm in the checkpoint, edm in"},
                        Case{"data.dataset=fashion_mnist", "data.dataset: mnist in the checkpoint, fashion_mnist in"}}) {
    const auto msg = refusal([&] { eval::load_trained(config_at(dir, {c.set}), torch::kCPU, 0); });
    EXPECT_NE(msg.find("trained under other settings"), std::string::npos) << c.set << ": " << msg;
    EXPECT_NE(msg.find(c.expected), std::string::npos) << c.set << ": " << msg;
    const auto key = c.set.substr(0, c.set.find('='));
    EXPECT_NE(msg.find("--set '" + key + "="), std::string::npos) << msg;
  }
  // Keys of training and sampling may change: the weights mean the same.
  for (const auto& allowed : {"train.lr=0.5", "sample.steps=7", "diffusion.p_mean=-1.0", "run.seed=9"})
    EXPECT_EQ(refusal([&] { eval::load_trained(config_at(dir, {allowed}), torch::kCPU, 0); }), "") << allowed;
}

TEST(Provenance, TheAutoencoderIsReadOnlyUnderItsOwnKeys) {
  TempRun run;
  const auto cfg = config_at(run.dir.string(), {"diffusion.space=latent", "sample.clip_x0=false"});
  const auto ae_dir = config::autoencoder_stage(cfg).out_dir();
  model::Autoencoder ae(cfg.autoencoder, 28, 1), ema(cfg.autoencoder, 28, 1);
  io::CheckpointInfo info;
  info.step = 1;
  info.config_yaml = cfg.yaml;
  fs::create_directories(ae_dir + "/checkpoints");
  io::write_checkpoint(io::checkpoint_path(ae_dir, 1), *ae, *ema, nullptr, info);
  const auto msg = refusal([&] {
    latent::load_autoencoder(config_at(run.dir.string(), {"diffusion.space=latent", "sample.clip_x0=false", "autoencoder.kl_weight=0.01"}), torch::kCPU, 0);
  });
  EXPECT_NE(msg.find("autoencoder.kl_weight: "), std::string::npos) << msg;
  EXPECT_NE(msg.find(" in the checkpoint, 0.01 in now.yaml"), std::string::npos) << msg;
  // Its training keys may change.
  EXPECT_EQ(refusal([&] {
              latent::load_autoencoder(config_at(run.dir.string(), {"diffusion.space=latent", "sample.clip_x0=false", "autoencoder.lr=0.5"}),
                                     torch::kCPU, 0);
            }),
            "");
}

TEST(Provenance, OneRuleForResumeAndSampling) {
  const auto cfg = config_at("/tmp/x", {"diffusion.space=latent", "sample.clip_x0=false"});
  for (const auto* key : {"model.dropout", "diffusion.prediction", "diffusion.timesteps", "diffusion.sigma_data",
                          "data.dataset", "autoencoder.latent_channels", "autoencoder.kl_weight"})
    EXPECT_TRUE(config::defines_diffusion(cfg, key)) << key;
  for (const auto* key : {"train.lr", "train.steps", "diffusion.p_mean", "diffusion.p_std", "sample.sampler",
                          "eval.seeds", "autoencoder.steps", "run.seed"})
    EXPECT_FALSE(config::defines_diffusion(cfg, key)) << key;
  // In pixel space the autoencoder's keys mean nothing to the U-Net.
  EXPECT_FALSE(config::defines_diffusion(config_at("/tmp/x"), "autoencoder.kl_weight"));
  EXPECT_TRUE(config::defines_classifier("data.dataset"));
  EXPECT_FALSE(config::defines_classifier("eval.classifier_epochs"));
}

// Autoguidance's guide from another run: any architecture and prediction, but the model's data,
// classes and noise process (config::guide_must_match); a step without a checkpoint is named.
TEST(Provenance, AGuideSharesTheNoiseProcessButNotTheArchitecture) {
  for (const auto* key : {"diffusion.timesteps", "diffusion.schedule", "diffusion.beta_end", "diffusion.kind",
                          "diffusion.space", "data.dataset", "model.num_classes"})
    EXPECT_TRUE(config::guide_must_match(key)) << key;
  for (const auto* key : {"diffusion.prediction", "diffusion.sigma_data", "diffusion.p_mean", "model.base_channels",
                          "model.channel_mult", "train.steps", "sample.sampler"})
    EXPECT_FALSE(config::guide_must_match(key)) << key;

  TempRun tmp;
  const auto here = (tmp.dir / "model").string(), small = (tmp.dir / "small").string(),
             other = (tmp.dir / "other").string();
  write_unet_checkpoint(config_at(here));
  write_unet_checkpoint(config_at(small, {"model.base_channels=4", "diffusion.prediction=v"}));
  write_unet_checkpoint(config_at(other, {"diffusion.timesteps=200"}));

  const auto guide = eval::load_guide(config_at(here, {"sample.guide_run=" + small}), 1, torch::kCPU, 0);
  ASSERT_TRUE(guide.has_value());
  EXPECT_EQ(guide->step, 1);
  EXPECT_NE(guide->describe().find(small), std::string::npos) << guide->describe();
  model::UNet model_net(config::unet_config(config_at(here)));
  EXPECT_LT(guide->net->forward_flops(), model_net->forward_flops());

  const auto mismatch = refusal([&] { eval::load_guide(config_at(here, {"sample.guide_run=" + other}), 1, torch::kCPU, 0); });
  EXPECT_NE(mismatch.find("diffusion.timesteps: 200 there, 100 here"), std::string::npos) << mismatch;
  const auto missing = refusal([&] { eval::load_guide(config_at(here, {"sample.guide_step=5"}), 1, torch::kCPU, 0); });
  EXPECT_NE(missing.find("sample.guide_step = 5"), std::string::npos) << missing;
  EXPECT_NE(missing.find("(kept: steps 1)"), std::string::npos) << missing;
  EXPECT_NE(missing.find("sample.guide_ema_sigma_rel"), std::string::npos) << missing;
  const auto no_snapshots = refusal(
      [&] { eval::load_guide(config_at(here, {"sample.guide_step=1", "sample.guide_ema_sigma_rel=0.05"}), 1, torch::kCPU, 0); });
  EXPECT_NE(no_snapshots.find("no snapshots of power-function EMAs up to step 1"), std::string::npos) << no_snapshots;
  EXPECT_FALSE(eval::load_guide(config_at(here), 1, torch::kCPU, 0).has_value());
}
