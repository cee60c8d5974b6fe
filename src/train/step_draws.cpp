#include "train/step_draws.hpp"

#include "util/rng.hpp"

namespace ddpm::train {

StepDraws draw_step(const model::Diffusion& diffusion, const config::Config& cfg, std::int64_t step, std::int64_t begin,
                    std::int64_t end, const torch::Device& device) {
  const std::int64_t B = cfg.train.batch_size;
  const std::int64_t size = cfg.model.image_size;
  const double p = cfg.model.num_classes > 0 ? cfg.train.label_dropout : 0.0;
  auto draw = [&](c10::optional<at::Generator> gen, const torch::TensorOptions& opts) {
    StepDraws d;
    d.t = diffusion.draw_levels(B, gen, opts).slice(0, begin, end);
    d.eps = torch::randn({B, cfg.model.in_channels, size, size}, gen, opts).slice(0, begin, end);
    if (p > 0.0) d.no_label = (torch::rand({B}, gen, opts) < p).slice(0, begin, end);
    return d;
  };
  if (device.is_cuda()) {
    torch::cuda::manual_seed_all(
        derive_seed({cfg.run.seed, static_cast<std::uint64_t>(Stream::TrainNoise), static_cast<std::uint64_t>(step)}));
    return draw(c10::nullopt, torch::TensorOptions().device(device));
  }
  return draw(make_generator(cfg.run.seed, Stream::TrainNoise, static_cast<std::uint64_t>(step)), torch::TensorOptions());
}

}  // namespace ddpm::train
