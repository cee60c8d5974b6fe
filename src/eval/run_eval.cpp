#include "eval/run_eval.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "data/mnist.hpp"
#include "eval/classifier_training.hpp"
#include "eval/distributed_sampling.hpp"
#include "eval/feature_metrics.hpp"
#include "eval/metrics.hpp"
#include "eval/sample_grid.hpp"
#include "eval/trained_model.hpp"
#include "io/checkpoint.hpp"
#include "io/png.hpp"
#include "model/precision.hpp"
#include "model/sampler.hpp"
#include "model/unet.hpp"
#include "util/error.hpp"
#include "util/rng.hpp"

namespace ddpm::eval {
namespace {

using clock = std::chrono::steady_clock;
double since(clock::time_point t) { return std::chrono::duration<double>(clock::now() - t).count(); }

// rows x columns frames -> one picture, a row per image.
void write_strip(const std::string& path, const torch::Tensor& frames_u8) {
  const auto rows = frames_u8.size(0), cols = frames_u8.size(1);
  io::write_png(path, io::make_grid(frames_u8.reshape({rows * cols, frames_u8.size(2), frames_u8.size(3)}),
                                    static_cast<int>(cols)));
}

// A few training images at t = 0, T/10, ..., T under q(x_t | x_0) (in latent space on their
// latents, each shown decoded).
void forward_picture(const config::Config& cfg, const data::Dataset& train, const model::Diffusion& diffusion,
                     const model::SampleSpace& space, const torch::Device& device, const std::string& run_file) {
  const int k = cfg.eval.trajectory_images, T = diffusion.timesteps();
  const auto images = data::to_model_range(train.images.slice(0, 0, k));
  auto x0 = space.from_images(images.to(device)).cpu();
  auto gen = Stream(cfg.run.seed, Purpose::ForwardPicture).generator();
  auto eps = torch::randn(x0.sizes(), gen);
  std::vector<torch::Tensor> columns{data::to_uint8(images)};
  std::vector<std::int64_t> timesteps{0};
  for (int j = 1; j <= 10; ++j) {
    const std::int64_t t = static_cast<std::int64_t>(T) * j / 10 - 1;  // 0-based: t = T-1 is the paper's T
    const auto x_t = diffusion.q_sample(x0, torch::full({k}, t, torch::kLong), eps);
    columns.push_back(data::to_uint8(space.to_images(x_t.to(device)).cpu()));
    timesteps.push_back(t + 1);
  }
  auto frames = torch::stack(columns, 1);
  io::write_trajectory(run_file, "forward", frames, timesteps, "training images under q(x_t | x_0), a row per image");
  write_strip(cfg.out_dir() + "/forward.png", frames);
}

// The first few samples along the reverse process, from noise to digit.
void reverse_picture(const config::Config& cfg, const model::Denoiser& denoise, const model::Diffusion& diffusion,
                     const model::SampleSpace& space, const torch::Device& device, const std::string& run_file) {
  const int k = cfg.eval.trajectory_images;
  std::vector<torch::Tensor> columns;
  std::vector<std::int64_t> timesteps;
  // About 10 evenly spaced noise levels, plus the noise and the final image.
  const int stride = std::max(1, static_cast<int>(model::sampling_levels(diffusion, cfg.sample).size()) / 10);
  int call = 0;
  auto keep = [&](std::int64_t t, const torch::Tensor& x) {
    if (call++ % stride == 0 || t == -1) {
      columns.push_back(data::to_uint8(space.to_images(x).cpu()));
      timesteps.push_back(t);
    }
  };
  auto sample_cfg = cfg.sample;
  sample_cfg.batch_size = k;
  const auto labels = model::sample_labels(cfg.sample.labels, cfg.model.num_classes, cfg.run.seed, 0, k);
  model::SampleRequest request{0, k, cfg.run.seed, labels};
  request.clamp = !space.latent();
  model::sample_images(denoise, diffusion, sample_cfg, space.shape(), request, device, nullptr, keep);
  auto frames = torch::stack(columns, 1);
  io::write_trajectory(run_file, "reverse", frames, timesteps, "samples along the reverse process, a row per image");
  write_strip(cfg.out_dir() + "/reverse.png", frames);
}

}  // namespace


EvalSummary run_evaluation(dist::Communicator& comm, const config::Config& cfg, const torch::Device& device,
                           const TrainClassifier& train_classifier) {
  comm.set_phase("evaluation", false);
  EvalSummary summary;
  auto trained = load_trained(cfg, device, comm.rank());
  const auto& info = trained.info;
  auto& live = trained.live;
  auto& ema = trained.ema;
  model::Diffusion diffusion(cfg.diffusion);

  const auto metric_start = clock::now();
  model::Classifier classifier;
  // MNIST is read once for the classifier, the reference statistics and the forward picture.
  const auto train = data::load_dataset(cfg.data_dir(), data::Split::Train);
  const auto test = data::load_dataset(cfg.data_dir(), data::Split::Test);
  const auto cls = ensure_classifier(comm, cfg, classifier, train, test, device, train_classifier);
  summary.classifier_accuracy = cls.test_accuracy;
  summary.classifier_fingerprint = cls.fingerprint;
  if (comm.rank() == 0)
    spdlog::info("evaluation classifier {}: test accuracy {:.2f}%, weights {}", cls.path, 100 * cls.test_accuracy,
                 cls.fingerprint);
  const auto ref = reference_stats(comm, real_features(comm, classifier, cfg, train, test, device), cfg,
                                   cfg.sample.num_samples);
  const auto& space = trained.space;
  double reconstruction_fid = std::numeric_limits<double>::quiet_NaN();
  if (space.latent()) {
    reconstruction_fid = transformed_floor_fid(
        comm, classifier, cfg, train, ref, cfg.sample.num_samples,
        [&](const torch::Tensor& x) { return space.to_images(space.from_images(x.to(device))).cpu(); }, device);
    if (comm.rank() == 0)
      spdlog::info("autoencoder reconstructions of the floor's {} training images: FID {:.3f} (floor {:.3f}, {:.2f}x): "
                   "what the first stage alone does to real images (not a bound on the samples' FID)",
                   std::min<std::int64_t>(cfg.sample.num_samples, train.size()), reconstruction_fid,
                   ref.floor.fid.value, reconstruction_fid / ref.floor.fid.value);
  }
  summary.metric_seconds += since(metric_start);

  const auto run_file = io::run_file_path(cfg.out_dir());
  std::vector<std::string> weight_sets;
  if (cfg.eval.weights != "raw") weight_sets.push_back("ema");
  if (cfg.eval.weights != "ema") weight_sets.push_back("raw");
  const bool conditional = cfg.model.num_classes > 0;
  // Guidance weights apply to conditional models (classifier-free) and to autoguided ones.
  const bool guidable = conditional || trained.guide.has_value();
  const auto guidances = guidable && !cfg.eval.guidance.empty() ? cfg.eval.guidance
                                                                 : std::vector<double>{cfg.sample.guidance};
  const auto guide = trained.guide_text();
  // /samples, samples.png and reverse.png show sample.guidance when it is measured, else the first weight.
  const double shown = std::find(guidances.begin(), guidances.end(), cfg.sample.guidance) != guidances.end()
                           ? cfg.sample.guidance
                           : guidances.front();
  const auto seeds = cfg.eval.sample_seeds(cfg.run.seed);
  for (const auto& w : weight_sets) {
    auto& net = w == "ema" ? ema : live;
    for (const double g : guidances) {
      io::EvalRecord r;
      r.weights = w;
      r.dataset = cfg.data.dataset;
      r.floor = ref.floor;
      r.seeds = seeds;
      r.sampler = cfg.sample.sampler;
      r.steps = model::network_evaluations(cfg.sample, cfg.diffusion);
      r.eta = cfg.sample.eta;
      r.checkpoint_step = info.step;
      r.ema_sigma_rel = w == "ema" && trained.posthoc ? trained.posthoc->sigma_rel : 0.0;
      r.classifier_test_accuracy = cls.test_accuracy;
      r.classifier_path = cls.path;
      r.classifier_fingerprint = cls.fingerprint;
      r.reconstruction_fid = reconstruction_fid;
      r.flops_per_sample = double(r.steps) * trained.denoiser_flops(net, g) + space.decode_flops();
      r.guided = guidable;
      r.guidance = g;
      r.guide = g != 0.0 ? guide : "";
      auto sample_cfg = cfg.sample;
      sample_cfg.guidance = g;
      // One denoiser for every seed: the seed changes the noise only (with CUDA graphs, no capture again).
      const auto denoise = trained.denoiser(net, diffusion, sample_cfg, device);
      for (std::size_t i = 0; i < seeds.size(); ++i) {
        auto seed_cfg = cfg;
        seed_cfg.run.seed = seeds[i];
        seed_cfg.sample = sample_cfg;
        const auto labels_asked = model::sample_labels(cfg.sample.labels, cfg.model.num_classes, seeds[i], 0,
                                                       cfg.sample.num_samples);
        const std::string guidance_text =
            (conditional ? fmt::format(", labels {}", config::describe(cfg.sample.labels)) : "") +
            (guidable ? fmt::format(", guidance {:g}{}", g, g != 0.0 && trained.guide ? " by the guide" : "") : "");
        if (comm.rank() == 0)
          spdlog::info("sampling {} images on {} rank(s) with {} weights of step {}, sample seed {} ({}/{}): {} ({} "
                       "network evaluations per image{}, eta {}{})",
                       cfg.sample.num_samples, comm.size(), w, info.step, seeds[i], i + 1, seeds.size(),
                       cfg.sample.sampler, r.steps,
                       g == 0.0 ? "" : trained.guide ? ", each with the guide's" : ", each of a doubled batch",
                       cfg.sample.eta,
                       guidance_text);
        const auto sample_start = clock::now();
        auto last_log = sample_start;
        auto progress = [&](int done, int total) {
          if (comm.rank() != 0 || (done != total && clock::now() - last_log < std::chrono::seconds(15))) return;
          last_log = clock::now();
          const double elapsed = since(sample_start);
          spdlog::info("sampling: {}/{} batch-steps on rank 0, {:.0f} s elapsed, ETA {:.0f} s", done, total, elapsed,
                       elapsed / done * (total - done));
        };
        const auto local = sample_local(comm, denoise, diffusion, seed_cfg, device, progress, &trained.space);
        const bool first = i == 0;
        const auto images = first ? comm.gatherv(local.cpu().contiguous(), 0) : torch::Tensor();
        summary.sample_seconds += since(sample_start);

        const auto measure_start = clock::now();
        const auto m = evaluate(comm, classifier, local, ref, cfg.sample.batch_size, device);
        summary.metric_seconds += since(measure_start);
        r.per_seed.push_back(m.figures);
        if (comm.rank() == 0)
          spdlog::info("{} weights{}, sample seed {}: FID {:.3f} +- {:.3f}, KID {:.5f} +- {:.5f}, FID at infinite N "
                       "{:.3f} +- {:.3f}, precision {:.3f}, recall {:.3f}, memorised {:.2f}%, confidence {:.2f}%",
                       w, guidable ? fmt::format(", guidance {:g}", g) : "", seeds[i], m.figures.fid.value,
                       m.figures.fid.se, m.figures.kid.value, m.figures.kid.se, m.figures.fid_inf.value,
                       m.figures.fid_inf.se, m.figures.precision, m.figures.recall, 100 * m.figures.memorised,
                       100 * m.mean_confidence);
        if (!first) continue;
        // The first seed's samples are the ones stored and shown.
        r.mean_confidence = m.mean_confidence;
        r.classes_present = m.classes_present;
        r.class_histogram = m.class_histogram;
        r.gen_features = m.gen_features;
        r.labels_pred = m.labels_pred;
        r.n_samples = m.count;
        if (comm.rank() != 0) continue;
        if (conditional) {
          r.conditional = true;
          r.labels_asked = labels_asked;
          const auto acc = conditional_accuracy(m.labels_pred, labels_asked, cfg.model.num_classes);
          r.cond_accuracy = acc.overall;
          r.class_accuracy = acc.per_class;
        }
        const auto u8 = data::to_uint8(images);
        r.images_u8 = u8;
        // /samples holds the first weight set evaluated (EMA unless only raw was asked for).
        if (w == weight_sets.front() && g == shown) {
          io::write_samples(run_file, u8,
                            {cfg.sample.sampler, r.steps, cfg.sample.eta, w == "ema", info.step, seeds[i],
                             labels_asked, g, r.ema_sigma_rel, r.guide});
          io::write_png(cfg.out_dir() + "/samples.png", sample_grid(u8, labels_asked));
          reverse_picture(seed_cfg, denoise, diffusion, trained.space, device, run_file);
        }
        if (w == weight_sets.front() && guidances.size() > 1)
          io::write_png(cfg.out_dir() + "/samples_" + io::guidance_group(g) + ".png", sample_grid(u8, labels_asked));
      }
      r.figures = mean_over_seeds(r.per_seed);
      if (comm.rank() == 0) {
        io::write_eval(run_file, ref.mu, ref.sigma, ref.count, r);
        spdlog::info("{} weights{}: FID {:.3f} +- {:.3f} (floor {:.3f}){}, confidence {:.2f}%, classes present "
                     "{:.0f}/10{}",
                     w, guidable ? fmt::format(", guidance {:g}", g) : "", r.figures.fid.value, r.figures.fid.se,
                     r.floor.fid.value,
                     seeds.size() > 1 ? fmt::format(" over {} sample seeds", seeds.size()) : "",
                     100 * r.mean_confidence, 10 * r.classes_present,
                     conditional ? fmt::format(", conditional accuracy {:.2f}%", 100 * r.cond_accuracy) : "");
      }
      summary.records.push_back(r);
    }
  }
  if (comm.rank() == 0) {
    forward_picture(cfg, train, diffusion, trained.space, device, run_file);
    spdlog::info("evaluation written: {} (/samples, /eval, /trajectory), {}/{{samples,forward,reverse}}.png", run_file,
                 cfg.out_dir());
  }
  comm.barrier();
  return summary;
}

std::string report_table(const EvalSummary& s, const std::vector<std::pair<std::string, double>>& stage_seconds) {
  // A guided model's rows also have a guidance weight, a conditional model's a conditional accuracy.
  const bool conditional = std::any_of(s.records.begin(), s.records.end(), [](const auto& r) { return r.conditional; });
  const bool guided = std::any_of(s.records.begin(), s.records.end(), [](const auto& r) { return r.guided; });
  auto pm = [](const io::Estimate& e) {
    return std::isfinite(e.value) ? fmt::format("{:.2f} ± {:.2f}", e.value, e.se) : std::string("-");
  };
  auto share = [](double v, int digits) { return std::isfinite(v) ? fmt::format("{:.{}f}", v, digits) : "-"; };
  // The cells of a line, in the order of the header's: weights, guidance, FID, KID, FID at N=inf,
  // precision, recall, memorised, confidence, cond. acc., classes, samples, sampler.
  auto line = [&](const std::vector<std::string>& c) {
    return fmt::format("{:<8} {}{:>16} {:>14} {:>15} {:>9} {:>7} {:>9} {:>11} {}{:>8} {:>9} {:>13}\n", c[0],
                       guided ? fmt::format("{:>8} ", c[1]) : "", c[2], c[3], c[4], c[5], c[6], c[7], c[8],
                       conditional ? fmt::format("{:>11} ", c[9]) : "", c[10], c[11], c[12]);
  };
  auto row = [&](const std::string& weights, const std::string& guidance, const io::FeatureFigures& f,
                 const std::string& confidence, const std::string& accuracy, const std::string& classes,
                 const std::string& samples, const std::string& sampler) {
    return line({weights, guidance, pm(f.fid), pm(f.kid), pm(f.fid_inf), share(f.precision, 3),
                 share(f.recall, 3), std::isfinite(f.memorised) ? fmt::format("{:.1f}%", 100 * f.memorised) : "-",
                 confidence, accuracy, classes, samples, sampler});
  };
  std::string out = "\n" + line({"weights", "guidance", "FID", "KID", "FID at N=inf", "precision", "recall", "memorised",
                                 "confidence", "cond. acc.", "classes", "samples", "sampler"});
  for (const auto& r : s.records)
    out += row(r.weights, fmt::format("{:g}", r.guidance), r.figures, fmt::format("{:.2f}%", 100 * r.mean_confidence),
               fmt::format("{:.2f}%", 100 * r.cond_accuracy), fmt::format("{:.0f}/10", 10 * r.classes_present),
               r.seeds.size() > 1 ? fmt::format("{} x{}", r.n_samples, r.seeds.size()) : std::to_string(r.n_samples),
               fmt::format("{} x{}", r.sampler, r.steps));
  if (!s.records.empty()) {
    const auto& r = s.records.front();
    out += row("real", "", r.floor, "", "", "", std::to_string(r.n_samples), "training set");
    if (r.seeds.size() > 1) {
      std::vector<double> fid, kid;
      for (const auto& f : r.per_seed) {
        fid.push_back(f.fid.value);
        kid.push_back(f.kid.value);
      }
      out += fmt::format("over {} sample seeds: the mean ± its standard error; the seeds' spread (standard deviation) "
                         "{} weights: FID {:.2f}, KID {:.2f}\n",
                         r.seeds.size(), r.weights, mean_and_spread(fid).se, mean_and_spread(kid).se);
    }
    out += "± : standard errors (FID: bootstrap over the samples; KID: 10 disjoint blocks; FID at N=inf: fit and "
           "sample); real: as many training images as samples\n";
  }
  out += fmt::format("classifier test accuracy {:.2f}%, weights {}\n", 100 * s.classifier_accuracy,
                     s.classifier_fingerprint);
  if (!s.records.empty()) {
    const auto& r = s.records.front();
    out += fmt::format("network GFLOPs per sample ({} weights{}): {:.3f}\n", r.weights,
                       guided ? fmt::format(", guidance {:g}", r.guidance) : "", r.flops_per_sample / 1e9);
    for (const auto& g : s.records)
      if (!g.guide.empty()) {
        out += "autoguidance: guided by " + g.guide + "\n";
        break;
      }
    if (std::isfinite(r.reconstruction_fid))
      out += fmt::format("autoencoder reconstruction FID {:.3f} (floor {:.3f}, {:.2f}x)\n", r.reconstruction_fid,
                         r.floor.fid.value, r.reconstruction_fid / r.floor.fid.value);
  }
  std::string times;
  for (const auto& [name, sec] : stage_seconds) times += fmt::format("  {} {:.1f} s", name, sec);
  out += "wall time:" + times + "\n";
  return out;
}

}  // namespace ddpm::eval
