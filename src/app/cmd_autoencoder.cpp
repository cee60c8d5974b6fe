#include <spdlog/spdlog.h>

#include <filesystem>
#include <memory>

#include "app/commands.hpp"
#include "app/resume.hpp"
#include "data/mnist.hpp"
#include "eval/distributed_sampling.hpp"
#include "latent/first_stage.hpp"
#include "io/h5.hpp"
#include "io/latent_cache.hpp"
#include "io/run_file.hpp"
#include "train/autoencoder_task.hpp"
#include "train/trainer.hpp"
#include "util/share.hpp"

namespace ddpm::app {
namespace {

// With the EMA weights: encodes the training set into the latent cache and measures the test set's
// reconstruction error (each rank a share); rank 0 writes the cache and the summary.
void encode_training_set(Session& s, model::Autoencoder& ae, const std::string& fingerprint,
                         const data::Dataset& train_set, const data::Dataset& test_set, std::int64_t step,
                         const std::string& dir) {
  ae->eval();
  const auto device = s.ctx.device();
  const auto batch = s.cfg.eval.batch_size;
  auto cache = latent::encode_posteriors(*s.comm, ae, train_set.images, batch, device);
  double sse = 0;
  torch::Tensor shown;  // the report's picture: the first test images and their reconstructions
  {
    c10::InferenceMode guard;
    const auto [first, count] = batch_share(test_set.size(), batch, s.comm->rank(), s.comm->size());
    for (auto i = first; i < first + count; i += batch) {
      const auto x = data::to_model_range(test_set.images.slice(0, i, std::min(first + count, i + batch)).to(device));
      sse += (ae->decode(ae->encode(x).mean) - x).square().sum().item<double>();
    }
    if (s.comm->rank() == 0) {
      const auto originals = test_set.images.slice(0, 0, 16);
      const auto x = data::to_model_range(originals.to(device));
      shown = torch::stack({originals, data::to_uint8(ae->decode(ae->encode(x).mean)).cpu()});
    }
  }
  auto sums = torch::tensor({sse}, torch::kFloat64);
  s.comm->allreduce_sum(sums);
  if (s.comm->rank() == 0) {
    cache.autoencoder = fingerprint;
    cache.autoencoder_step = step;
    const auto cache_path = io::latent_cache_path(dir);
    io::write_latent_cache(cache_path, cache);
    const double pixels = double(test_set.size()) * double(test_set.images[0].numel());
    const io::AutoencoderSummary summary{step,         train_set.size(), cache.latent_mean, cache.latent_std,
                                         sums.item<double>() / pixels, shown};
    const auto path = io::run_file_path(dir);
    io::write_autoencoder_summary(path, summary);
    spdlog::info("autoencoder (EMA weights of step {}, {}): latents have mean {:.4f} and standard deviation {:.4f} over "
                 "{} training images (diffusion sees (z - {:.4f}) / {:.4f}); test-set reconstruction MSE {:.5f} per "
                 "pixel; latent cache {}, summary {} (/autoencoder)",
                 step, cache.autoencoder, summary.latent_mean, summary.latent_std, summary.images, summary.latent_mean,
                 summary.latent_std, summary.test_mse, cache_path, path);
  }
  s.comm->barrier();
}

// Whether the latent cache in `dir` was made by the weights of `fingerprint` (rank 0 reads it;
// every rank learns).
bool cache_is_current(Session& s, const std::string& fingerprint, const std::string& dir) {
  auto current = torch::zeros({1}, torch::kFloat64);
  if (s.comm->rank() == 0) {
    const auto path = io::latent_cache_path(dir);
    try {
      if (std::filesystem::exists(path) && io::read_latent_cache(path, false).autoencoder == fingerprint)
        current[0] = 1.0;
    } catch (const io::DamagedFile& e) {
      spdlog::warn("{}; it is written again", e.what());
    }
    if (current[0].item<double>() > 0) spdlog::info("{}: the latent cache is that of these weights; kept", path);
  }
  s.comm->allreduce_sum(current);
  return current[0].item<double>() > 0;
}

}  // namespace

bool cmd_autoencoder(Session& s) {
  const auto stage = config::autoencoder_stage(s.cfg);
  const auto train_set = data::load_dataset(s.cfg.data_dir(), data::Split::Train);
  spdlog::info("{}: {} training images", s.cfg.data_dir(), train_set.size());
  auto task = std::make_unique<train::AutoencoderTask>(stage, train_set, s.ctx.device());
  auto& ae = *task;
  train::Trainer trainer(stage, std::move(task), s.ctx.device(), *s.comm);
  const auto shape = ae.autoencoder()->latent_shape();
  spdlog::info("autoencoder: {} parameters; latent {}x{}x{} ({} numbers per image against {} pixels); {:.1f} MFLOPs "
               "to encode an image, {:.1f} to decode it; checkpoints and history in {}",
               ae.autoencoder()->parameter_count(), shape[0], shape[1], shape[2], shape[0] * shape[1] * shape[2],
               train_set.images[0].numel(), ae.autoencoder()->encode_flops() / 1e6,
               ae.autoencoder()->decode_flops() / 1e6, stage.out_dir());
  resume_or_start(s, trainer, stage.out_dir());
  if (trainer.run() != train::Trainer::Outcome::Finished) return false;

  const auto fingerprint = io::weights_fingerprint(*ae.ema_autoencoder());
  if (cache_is_current(s, fingerprint, stage.out_dir())) return true;
  const auto test_set = data::load_dataset(s.cfg.data_dir(), data::Split::Test);
  encode_training_set(s, ae.ema_autoencoder(), fingerprint, train_set, test_set, trainer.step(), stage.out_dir());
  return true;
}

}  // namespace ddpm::app
