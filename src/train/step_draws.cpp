#include "train/step_draws.hpp"


namespace ddpm::train {

StepDraws draw_step(const model::Diffusion& diffusion, const config::Config& cfg, std::int64_t step, std::int64_t begin,
                    std::int64_t end, const torch::Device& device) {
  const std::int64_t B = cfg.train.batch_size;
  auto shape = config::diffusion_shape(cfg);
  shape.insert(shape.begin(), B);
  const double p = cfg.model.num_classes > 0 ? cfg.train.label_dropout : 0.0;
  return Stream(cfg.run.seed, Purpose::TrainNoise).draw({std::uint64_t(step)}, device, [&](c10::optional<at::Generator> gen,
                                                                                           const torch::TensorOptions& opts) {
    StepDraws d;
    d.t = diffusion.draw_levels(B, gen, opts).slice(0, begin, end);
    d.eps = torch::randn(shape, gen, opts).slice(0, begin, end);
    if (p > 0.0) d.no_label = (torch::rand({B}, gen, opts) < p).slice(0, begin, end);
    return d;
  });
}

}  // namespace ddpm::train
