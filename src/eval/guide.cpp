#include "eval/guide.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <filesystem>

#include "io/checkpoint.hpp"
#include "io/latent_cache.hpp"
#include "io/run_file.hpp"
#include "util/error.hpp"

namespace ddpm::eval {
namespace {

namespace fs = std::filesystem;

// The steps of the checkpoints kept in <run_dir>/checkpoints, for the message of a missing one.
std::string kept_steps(const std::string& run_dir) {
  const auto steps = io::checkpoint_steps(run_dir);
  return steps.empty() ? "none" : fmt::format("{}", fmt::join(steps, ", "));
}

// Another run guides only on the model's data, classes, noise process and latents.
void check_shared(const config::Config& cfg, const config::Config& guide, const std::string& checkpoint) {
  std::string diffs;
  for (const auto& c : config::changed_keys(guide.yaml, cfg))
    if (config::guide_must_match(c.key)) diffs += fmt::format("\n  {}: {} there, {} here", c.key, c.before, c.now);
  if (!diffs.empty())
    throw Error("sample.guide_run: " + checkpoint + " was trained on another data set, classes or noise process than "
                "this model; a guide must share them (its architecture and prediction may differ):" + diffs);
  if (!cfg.latent()) return;
  const auto here = io::read_latent_origin(io::run_file_path(cfg.out_dir()));
  const auto there = io::read_latent_origin(io::run_file_path(guide.out_dir()));
  if (!here || !there || here->autoencoder != there->autoencoder || here->latent_mean != there->latent_mean ||
      here->latent_std != there->latent_std)
    throw Error(fmt::format("sample.guide_run: {} was trained on the latents of {} (scale {}), this model on those of "
                            "{} (scale {}); in latent space a guide must share the autoencoder and its scale: train "
                            "the guide with this run's autoencoder (copy {}/autoencoder into its folder first)",
                            guide.out_dir(), there ? there->autoencoder : "no autoencoder",
                            there ? fmt::format("{:g}", there->latent_std) : "-",
                            here ? here->autoencoder : "no autoencoder",
                            here ? fmt::format("{:g}", here->latent_std) : "-", cfg.out_dir()));
}

}  // namespace

std::string Guide::describe() const {
  const std::string whose = run_dir.empty() ? "this run" : run_dir;
  if (posthoc) return fmt::format("{}'s {}", whose, posthoc->describe());
  return fmt::format("{}'s EMA of step {} ({})", whose, step, checkpoint);
}

std::optional<Guide> load_guide(const config::Config& cfg, std::int64_t model_step, const torch::Device& device,
                                int rank) {
  const auto& s = cfg.sample;
  if (!s.autoguided()) return std::nullopt;
  Guide g;
  const bool own = s.guide_run.empty();
  g.run_dir = own ? "" : s.guide_run;
  const std::string dir = own ? cfg.out_dir() : s.guide_run;
  const bool posthoc = s.guide_ema_sigma_rel > 0;
  if (s.guide_step > 0 && !posthoc) {
    g.checkpoint = io::checkpoint_path(dir, s.guide_step);
    if (!fs::exists(g.checkpoint))
      throw Error(fmt::format("sample.guide_step = {}: {}/checkpoints holds no checkpoint of that step (kept: steps "
                              "{}); name a kept step, or set sample.guide_ema_sigma_rel (e.g. 0.05) to reconstruct "
                              "the guide at any step from the run's post-hoc EMA snapshots",
                              s.guide_step, dir, kept_steps(dir)));
  } else {
    const auto newest = io::latest_checkpoint(dir);
    if (!newest)
      throw Error(dir + "/checkpoints: no complete checkpoint for the autoguidance guide" +
                  (own ? std::string() : " (sample.guide_run); train that run first"));
    g.checkpoint = *newest;
  }
  // This run's guide is its own architecture; another run's is read from its checkpoint.
  const auto guide_cfg = own ? cfg : config::parse(io::read_checkpoint_config(g.checkpoint), g.checkpoint);
  if (!own) check_shared(cfg, guide_cfg, g.checkpoint);
  const auto unet = config::unet_config(guide_cfg);
  model::UNet live(unet);
  g.net = model::UNet(unet);
  const auto info = io::read_checkpoint(g.checkpoint, *live, *g.net, nullptr, &guide_cfg,
                                        [&](const std::string& key) { return config::defines_diffusion(guide_cfg, key); });
  g.step = info.step;
  if (posthoc) {
    g.posthoc = load_posthoc_ema(dir, s.guide_ema_sigma_rel, s.guide_step > 0 ? s.guide_step : -1, *g.net);
    g.step = g.posthoc->step;
  }
  if (own && rank == 0 && g.step >= model_step)
    spdlog::warn("autoguidance: the guide (this run at step {}) is no earlier than the model (step {}): a guide "
                 "helps by being weaker; set sample.guide_step below {}",
                 g.step, model_step, model_step);
  g.diffusion = std::make_unique<model::Diffusion>(guide_cfg.diffusion);
  g.net->to(device);
  g.net->eval();
  if (rank == 0) spdlog::info("autoguidance: guided by {}", g.describe());
  return g;
}

model::Denoiser guided_denoiser(model::UNet& net, const model::Diffusion& diffusion, const config::SampleConfig& cfg,
                                const torch::Device& device, Guide* guide) {
  if (!guide) return model::sampling_denoiser(net, diffusion, cfg, device);
  const auto guide_net = guide->guide_net();
  return model::sampling_denoiser(net, diffusion, cfg, device, &guide_net);
}

double guided_flops(model::UNet& net, const Guide* guide, double w) {
  if (w == 0.0) return net->forward_flops();
  return net->forward_flops() + (guide ? guide->net->forward_flops() : net->forward_flops());
}

}  // namespace ddpm::eval
