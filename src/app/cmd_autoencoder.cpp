#include <spdlog/spdlog.h>

#include <memory>

#include "app/commands.hpp"
#include "app/resume.hpp"
#include "data/mnist.hpp"
#include "io/run_file.hpp"
#include "train/autoencoder_task.hpp"
#include "train/trainer.hpp"

namespace ddpm::app {
namespace {

// This rank's share of `n` examples: [begin, end), contiguous, the ranks together covering all.
std::pair<std::int64_t, std::int64_t> share_of(std::int64_t n, int rank, int world) {
  return {n * rank / world, n * (rank + 1) / world};
}

// The latents' moments over the training set and the test set's reconstruction error, with the
// EMA weights; each rank encodes its share, the sums are reduced across the ranks.
io::AutoencoderSummary summarise(Session& s, model::Autoencoder& ae, const data::Dataset& train_set,
                                 const data::Dataset& test_set, std::int64_t step) {
  torch::NoGradGuard no_grad;
  ae->eval();
  const auto device = s.ctx.device();
  const auto batch = s.cfg.eval.batch_size;
  const int rank = s.comm->rank(), world = s.comm->size();
  model::LatentMoments moments;
  const auto [tb, te] = share_of(train_set.size(), rank, world);
  for (auto i = tb; i < te; i += batch) {
    const auto x = data::to_model_range(train_set.images.slice(0, i, std::min(te, i + batch)).to(device));
    moments += model::latent_moments(ae->encode(x));
  }
  double sse = 0;
  const auto [vb, ve] = share_of(test_set.size(), rank, world);
  for (auto i = vb; i < ve; i += batch) {
    const auto x = data::to_model_range(test_set.images.slice(0, i, std::min(ve, i + batch)).to(device));
    sse += (ae->decode(ae->encode(x).mean) - x).square().sum().item<double>();
  }
  auto sums = torch::tensor({moments.count, moments.sum, moments.sum_sq, sse}, torch::kFloat64);
  s.comm->set_phase("the autoencoder's latent statistics");
  s.comm->allreduce_sum(sums);
  const auto* v = sums.data_ptr<double>();
  const model::LatentMoments all{v[0], v[1], v[2]};
  const double pixels = double(test_set.size()) * double(test_set.images[0].numel());
  return {step, train_set.size(), all.mean(), all.std(), v[3] / pixels};
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

  const auto test_set = data::load_dataset(s.cfg.data_dir(), data::Split::Test);
  const auto summary = summarise(s, ae.ema_autoencoder(), train_set, test_set, trainer.step());
  if (s.comm->rank() == 0) {
    const auto path = io::run_file_path(stage.out_dir());
    io::write_autoencoder_summary(path, summary);
    spdlog::info("autoencoder (EMA weights of step {}): latents have mean {:.4f} and standard deviation {:.4f} over "
                 "{} training images (diffusion sees them divided by {:.4f}); test-set reconstruction MSE {:.5f} "
                 "per pixel; written to {} (/autoencoder)",
                 summary.step, summary.latent_mean, summary.latent_std, summary.images, summary.latent_std,
                 summary.test_mse, path);
  }
  return true;
}

}  // namespace ddpm::app
