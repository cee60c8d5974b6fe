#include "latent/first_stage.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cmath>

#include "data/mnist.hpp"
#include "io/checkpoint.hpp"
#include "io/h5.hpp"
#include "io/run_file.hpp"
#include "util/error.hpp"
#include "util/share.hpp"

namespace ddpm::latent {
namespace {

std::string autoencoder_dir(const config::Config& cfg) { return config::autoencoder_stage(cfg).out_dir(); }

std::string rerun(const config::Config& cfg) {
  return "run `ddpm_dist autoencoder " + cfg.source + " --resume auto` to encode the training set with it again";
}

}  // namespace

TrainedAutoencoder load_autoencoder(const config::Config& cfg, const torch::Device& device, int rank) {
  const auto dir = autoencoder_dir(cfg);
  const auto ckpt = io::latest_checkpoint(dir);
  if (!ckpt)
    throw Error(dir + "/checkpoints: no autoencoder checkpoint (diffusion.space: latent); run `ddpm_dist autoencoder " +
                cfg.source + "` first");
  TrainedAutoencoder a;
  a.path = *ckpt;
  model::Autoencoder live(cfg.autoencoder, cfg.model.image_size, cfg.model.in_channels);
  a.ema = model::Autoencoder(cfg.autoencoder, cfg.model.image_size, cfg.model.in_channels);
  const auto info = io::read_checkpoint(*ckpt, *live, *a.ema, nullptr, &cfg, config::defines_autoencoder);
  if (rank == 0 && !info.checksummed) spdlog::warn("{}", io::no_checksums_warning(*ckpt));
  a.step = info.step;
  a.fingerprint = io::weights_fingerprint(*a.ema);
  a.ema->to(device);
  a.ema->eval();
  return a;
}

io::LatentCache encode_posteriors(dist::Communicator& comm, model::Autoencoder& ae, const torch::Tensor& images_u8,
                                  std::int64_t batch, const torch::Device& device) {
  c10::InferenceMode guard;
  std::vector<torch::Tensor> means, stds;
  const auto [first, count] = batch_share(images_u8.size(0), batch, comm.rank(), comm.size());
  for (auto i = first; i < first + count; i += batch) {
    const auto x = data::to_model_range(images_u8.slice(0, i, std::min(first + count, i + batch)).to(device));
    const auto q = ae->encode(x);
    means.push_back(q.mean.to(torch::kCPU, torch::kFloat32));
    stds.push_back(q.std().to(torch::kCPU, torch::kFloat32));
  }
  auto cat = [&](std::vector<torch::Tensor>& parts) {
    if (!parts.empty()) return torch::cat(parts).contiguous();
    auto shape = ae->latent_shape();
    shape.insert(shape.begin(), 0);
    return torch::empty(shape);
  };
  comm.set_phase("gathering the latent posteriors", false);
  io::LatentCache cache;
  cache.images = images_u8.size(0);
  cache.mean = comm.gatherv(cat(means), 0);
  cache.std = comm.gatherv(cat(stds), 0);
  if (comm.rank() != 0) return {};
  const auto m = model::latent_moments(cache.mean, cache.std);
  cache.latent_mean = m.mean();
  cache.latent_std = m.std();
  return cache;
}

model::LatentScale checked_scale(const io::LatentCache& cache, const std::string& path, double rel_tol) {
  const auto m = model::latent_moments(cache.mean, cache.std);
  const double err_mean = std::abs(m.mean() - cache.latent_mean) / m.std();
  const double err_std = std::abs(m.std() - cache.latent_std) / m.std();
  if (!(err_mean <= rel_tol && err_std <= rel_tol))
    throw Error(fmt::format("{}: the latent scale it states (mean {:.6g}, std {:.6g}) is not that of its posteriors "
                            "(mean {:.6g}, std {:.6g}); diffusion on wrongly scaled latents trains a model whose samples "
                            "decode to noise. Delete the file and run `ddpm_dist autoencoder CONFIG --resume auto` to "
                            "write it again",
                            path, cache.latent_mean, cache.latent_std, m.mean(), m.std()));
  return {cache.latent_mean, cache.latent_std};
}

LatentTraining load_latent_training(const config::Config& cfg, const torch::Device& device, int rank) {
  auto ae = load_autoencoder(cfg, device, rank);
  const auto path = io::latent_cache_path(autoencoder_dir(cfg));
  auto cache = io::read_latent_cache(path, true);
  if (cache.autoencoder != ae.fingerprint)
    throw Error(fmt::format("{}: the latent cache was made by another autoencoder (weights {}, step {}) than the one "
                            "in {} (weights {}, step {}); {}",
                            path, cache.autoencoder, cache.autoencoder_step, ae.path, ae.fingerprint, ae.step,
                            rerun(cfg)));
  const auto scale = checked_scale(cache, path);
  return {std::move(cache), model::SampleSpace(ae.ema, scale)};
}

model::SampleSpace load_sample_space(const config::Config& cfg, const torch::Device& device, int rank) {
  if (!cfg.latent()) return model::SampleSpace(config::diffusion_shape(cfg));
  auto ae = load_autoencoder(cfg, device, rank);
  const auto run_file = io::run_file_path(cfg.out_dir());
  const auto origin = io::read_latent_origin(run_file);
  if (!origin)
    throw Error(run_file + ": holds no /latent record of the latents the model was trained on (diffusion.space: "
                "latent); train it with `ddpm_dist train " + cfg.source + "`");
  if (origin->autoencoder != ae.fingerprint)
    throw Error(fmt::format("{}: the diffusion model was trained on the latents of another autoencoder (weights {}, "
                            "step {}) than the one in {} (weights {}, step {}); its samples would decode to noise. "
                            "Train the diffusion model again, or restore that autoencoder",
                            run_file, origin->autoencoder, origin->autoencoder_step, ae.path, ae.fingerprint, ae.step));
  return model::SampleSpace(ae.ema, {origin->latent_mean, origin->latent_std});
}

}  // namespace ddpm::latent
