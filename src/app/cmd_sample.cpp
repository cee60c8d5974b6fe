#include <spdlog/spdlog.h>

#include <chrono>

#include "app/commands.hpp"
#include "data/mnist.hpp"
#include "io/checkpoint.hpp"
#include "io/run_file.hpp"
#include "io/png.hpp"
#include "eval/distributed_sampling.hpp"
#include "eval/sample_grid.hpp"
#include "eval/trained_model.hpp"
#include "model/sampler.hpp"
#include "model/unet.hpp"
#include "util/error.hpp"

namespace ddpm::app {

void cmd_sample(Session& s) {
  s.comm->set_phase("sampling", false);
  const auto& cfg = s.cfg;
  auto trained = eval::load_trained(cfg, s.ctx.device(), s.comm->rank());
  const auto& info = trained.info;
  if (cfg.eval.weights == "both")
    throw Error("ddpm_dist sample draws from one set of weights, but eval.weights is `both`: set it to `ema` or `raw` "
                "(--set eval.weights=raw)");
  const bool use_ema = cfg.eval.weights == "ema";
  auto& net = use_ema ? trained.ema : trained.live;
  const int steps = model::network_evaluations(cfg.sample, cfg.diffusion);
  const bool conditional = cfg.model.num_classes > 0;
  spdlog::info("sampling {} images on {} rank(s) with {} ({} network evaluations per image, eta {}{}) from {} ({} "
               "weights, step {})",
               cfg.sample.num_samples, s.comm->size(), cfg.sample.sampler, steps, cfg.sample.eta,
               (conditional ? fmt::format(", labels {}", config::describe(cfg.sample.labels)) : "") +
                   (conditional || trained.guide ? fmt::format(", guidance {:g}", cfg.sample.guidance) : ""),
               trained.path, use_ema ? "EMA" : "raw", info.step);

  model::Diffusion diffusion(cfg.diffusion);
  const auto start = std::chrono::steady_clock::now();
  auto last_log = start;
  auto progress = [&](int done, int total) {
    const auto now = std::chrono::steady_clock::now();
    if (done != total && now - last_log < std::chrono::seconds(10)) return;
    last_log = now;
    const double elapsed = std::chrono::duration<double>(now - start).count();
    spdlog::info("sampling {}/{} batch-steps, {:.0f} s elapsed, ETA {:.0f} s", done, total, elapsed,
                 elapsed / done * (total - done));
  };
  auto images = eval::sample_distributed(*s.comm, trained.denoiser(net, diffusion, cfg.sample, s.ctx.device()),
                                         diffusion, cfg, s.ctx.device(), progress, &trained.space);
  if (s.comm->rank() != 0) return;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  spdlog::info("sampled {} images in {:.1f} s: {:.1f} img-steps/s", images.size(0), seconds,
               images.size(0) * steps / seconds);

  const auto u8 = data::to_uint8(images);
  const auto path = io::run_file_path(cfg.out_dir());
  const auto labels =
      model::sample_labels(cfg.sample.labels, cfg.model.num_classes, cfg.run.seed, 0, cfg.sample.num_samples);
  io::write_samples(path, u8,
                    {cfg.sample.sampler, steps, cfg.sample.eta, use_ema, info.step, cfg.run.seed, labels,
                     cfg.sample.guidance, use_ema && trained.posthoc ? trained.posthoc->sigma_rel : 0.0,
                     cfg.sample.guidance != 0.0 ? trained.guide_text() : ""});
  io::write_png(cfg.out_dir() + "/samples.png", eval::sample_grid(u8, labels));
  spdlog::info("samples written: {} (/samples/images{}) and {}/samples.png", path, conditional ? ", /samples/labels" : "",
               cfg.out_dir());
}

}  // namespace ddpm::app
