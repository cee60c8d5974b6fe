#include "eval/sweep.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <optional>

#include "data/mnist.hpp"
#include "eval/distributed_sampling.hpp"
#include "eval/guide.hpp"
#include "eval/metrics.hpp"
#include "eval/posthoc_ema.hpp"
#include "eval/trained_model.hpp"
#include "model/sampler.hpp"
#include "util/error.hpp"

namespace ddpm::eval {
namespace {

using clock = std::chrono::steady_clock;
double since(clock::time_point t) { return std::chrono::duration<double>(clock::now() - t).count(); }

double metric_of(const io::SweepRow& r, const std::string& metric) {
  return metric == "fid" ? r.figures.fid.value : r.figures.kid.value;
}
double metric_se(const io::SweepRow& r, const std::string& metric) {
  return metric == "fid" ? r.figures.fid.se : r.figures.kid.se;
}

std::string ema_text(double sigma_rel) { return sigma_rel > 0 ? fmt::format("{:g}", sigma_rel) : "ckpt"; }

std::string guide_text(const io::SweepRow& r, const std::string& guide_run) {
  if (r.guidance == 0.0) return "-";
  if (r.guide.empty()) return "classifier-free";
  const std::string step = r.guide_step > 0 ? fmt::format("step {}", r.guide_step) : "newest";
  return (guide_run.empty() ? "" : "other run ") + step + " @" + ema_text(r.guide_ema_sigma_rel);
}

// The model's EMA weights as each cell asks: the checkpoint's (kept aside) or post-hoc EMA's.
class EmaWeights {
 public:
  EmaWeights(const config::Config& cfg, model::UNet& net, std::int64_t step, bool posthoc) : net_(net) {
    torch::NoGradGuard no_grad;
    for (const auto& p : net->parameters()) checkpoint_.push_back(p.detach().clone());
    if (posthoc) source_.emplace(cfg.out_dir(), *net, step);
  }
  void set(double sigma_rel, int rank) {
    if (sigma_rel == current_) return;
    current_ = sigma_rel;
    if (sigma_rel > 0) {
      const auto p = source_->reconstruct(sigma_rel, -1, *net_);
      if (rank == 0) spdlog::info("sweep: ema weights: {}", p.describe());
      return;
    }
    torch::NoGradGuard no_grad;
    auto params = net_->parameters();
    for (std::size_t i = 0; i < params.size(); ++i) params[i].copy_(checkpoint_[i]);
  }

 private:
  model::UNet& net_;
  std::vector<torch::Tensor> checkpoint_;
  std::optional<PosthocEmaSource> source_;
  double current_ = 0.0;
};

}  // namespace

std::vector<SweepSetting> sweep_grid(const config::Config& cfg) {
  const auto& s = cfg.sweep;
  const bool classifier_free = cfg.model.num_classes > 0 && cfg.train.label_dropout > 0.0;
  std::vector<SweepSetting> guides;
  bool with_cfg = false;
  for (const auto step : s.guide_steps) {
    if (step == 0 && cfg.sample.guide_run.empty()) {
      with_cfg = classifier_free;
      continue;
    }
    for (const double r : s.guide_ema_sigma_rels) guides.push_back({0, step, r, 0, true});
  }
  if (with_cfg) guides.insert(guides.begin(), SweepSetting{});
  std::vector<SweepSetting> grid;
  for (const double ema : s.ema_sigma_rels) {
    for (const double w : s.guidances) {
      if (w != 0.0) continue;
      grid.push_back({ema, 0, 0, 0, false});
      break;
    }
    for (const auto& g : guides)
      for (const double w : s.guidances)
        if (w != 0.0) grid.push_back({ema, g.guide_step, g.guide_ema_sigma_rel, w, g.autoguided});
  }
  return grid;
}

void mark_best(io::SweepTable& t) {
  if (t.rows.empty()) return;
  auto eligible = [&](const io::SweepRow& r) { return t.min_cond_accuracy <= 0 || r.cond_accuracy >= t.min_cond_accuracy; };
  t.met = std::any_of(t.rows.begin(), t.rows.end(), eligible);
  std::optional<std::size_t> best;
  for (std::size_t i = 0; i < t.rows.size(); ++i)
    if ((!t.met || eligible(t.rows[i])) && (!best || metric_of(t.rows[i], t.metric) < metric_of(t.rows[*best], t.metric)))
      best = i;
  t.best = *best;
  const auto& b = t.rows[t.best];
  for (auto& r : t.rows) {
    r.vs_best = metric_of(r, t.metric) - metric_of(b, t.metric);
    const bool paired = t.metric == "kid" && !r.kid_blocks.empty() && r.kid_blocks.size() == b.kid_blocks.size();
    if (paired) {
      std::vector<double> diff;
      for (std::size_t k = 0; k < r.kid_blocks.size(); ++k) diff.push_back(r.kid_blocks[k] - b.kid_blocks[k]);
      r.vs_best_se = io::mean_and_spread(diff).se / std::sqrt(double(diff.size()));
    } else {
      r.vs_best_se = std::hypot(metric_se(r, t.metric), metric_se(b, t.metric));
    }
    r.within = (!t.met || eligible(r)) && r.vs_best <= 2.0 * r.vs_best_se;
  }
}

io::SweepTable run_sweep(dist::Communicator& comm, const config::Config& cfg, const torch::Device& device,
                         const TrainClassifier& train_classifier) {
  comm.set_phase("sweep", false);
  const auto grid = sweep_grid(cfg);
  if (grid.empty())
    throw Error(cfg.source + ": the sweep's grid is empty: sweep.guidances lists only weights > 0, and the model has "
                "no guide (an unconditional model needs sweep.guide_steps > 0 or sample.guide_run); add 0 to "
                "sweep.guidances or name a guide");
  // The model as trained: the checkpoint's EMA, no guide (each cell sets its own).
  auto base = cfg;
  base.eval.ema_sigma_rel = 0.0;
  base.sample.guide_run.clear();
  base.sample.guide_step = 0;
  base.sample.num_samples = cfg.sweep.num_samples;
  auto trained = load_trained(base, device, comm.rank());
  const bool posthoc = std::any_of(grid.begin(), grid.end(), [](const auto& c) { return c.ema_sigma_rel > 0; });
  EmaWeights ema(cfg, trained.ema, trained.info.step, posthoc);
  model::Diffusion diffusion(cfg.diffusion);

  model::Classifier classifier;
  const auto train = data::load_dataset(cfg.data_dir(), data::Split::Train);
  const auto test = data::load_dataset(cfg.data_dir(), data::Split::Test);
  const auto cls = ensure_classifier(comm, cfg, classifier, train, test, device, train_classifier);
  const auto ref = reference_stats(comm, real_features(comm, classifier, cfg, train, test, device), cfg,
                                   cfg.sweep.num_samples);

  io::SweepTable table;
  table.metric = cfg.sweep.metric;
  table.min_cond_accuracy = cfg.sweep.min_cond_accuracy;
  table.floor = ref.floor;
  table.checkpoint_step = trained.info.step;
  table.num_samples = cfg.sweep.num_samples;
  table.seeds = cfg.sweep.sample_seeds(cfg.run.seed);
  table.sampler = cfg.sample.sampler;
  table.steps = model::network_evaluations(cfg.sample, cfg.diffusion);
  table.guide_run = cfg.sample.guide_run;
  const bool conditional = cfg.model.num_classes > 0;
  if (comm.rank() == 0)
    spdlog::info("sweep: {} cells on {} rank(s), {} images x {} sample seed(s) each ({} x{}), step {} of {}; by {}",
                 grid.size(), comm.size(), table.num_samples, table.seeds.size(), table.sampler, table.steps,
                 table.checkpoint_step, cfg.out_dir(), table.metric);

  std::map<std::pair<std::int64_t, double>, Guide> guides;
  const auto start = clock::now();
  for (std::size_t c = 0; c < grid.size(); ++c) {
    const auto& cell = grid[c];
    const auto cell_start = clock::now();
    ema.set(cell.ema_sigma_rel, comm.rank());
    Guide* guide = nullptr;
    if (cell.autoguided) {
      const auto key = std::make_pair(cell.guide_step, cell.guide_ema_sigma_rel);
      if (!guides.count(key)) {
        auto guide_cfg = cfg;
        guide_cfg.sample.guide_step = cell.guide_step;
        guide_cfg.sample.guide_ema_sigma_rel = cell.guide_ema_sigma_rel;
        guides.emplace(key, std::move(*load_guide(guide_cfg, trained.info.step, device, comm.rank())));
      }
      guide = &guides.at(key);
    }
    auto sample_cfg = base.sample;
    sample_cfg.guidance = cell.guidance;
    const auto denoise = guided_denoiser(trained.ema, diffusion, sample_cfg, device, guide);
    io::SweepRow row;
    row.ema_sigma_rel = cell.ema_sigma_rel;
    row.guide_step = cell.guide_step;
    row.guide_ema_sigma_rel = cell.guide_ema_sigma_rel;
    row.guidance = cell.guidance;
    row.guide = guide ? guide->describe() : "";
    row.flops_per_sample = table.steps * guided_flops(trained.ema, guide, cell.guidance) + trained.space.decode_flops();
    std::vector<io::FeatureFigures> per_seed;
    double confidence = 0, accuracy = 0;
    for (const auto seed : table.seeds) {
      auto seed_cfg = base;
      seed_cfg.run.seed = seed;
      seed_cfg.sample = sample_cfg;
      const auto local = sample_local(comm, denoise, diffusion, seed_cfg, device, nullptr, &trained.space);
      const auto m = evaluate(comm, classifier, local, ref, cfg.sample.batch_size, device);
      per_seed.push_back(m.figures);
      if (comm.rank() == 0 && m.gen_features.size(0) >= 2 * kKidBlocks) {
        const auto blocks = kid_blocks(m.gen_features, ref.real, kKidBlocks);
        row.kid_blocks.insert(row.kid_blocks.end(), blocks.begin(), blocks.end());
      }
      confidence += m.mean_confidence / double(table.seeds.size());
      if (conditional && comm.rank() == 0) {
        const auto asked = model::sample_labels(cfg.sample.labels, cfg.model.num_classes, seed, 0, table.num_samples);
        accuracy += conditional_accuracy(m.labels_pred, asked, cfg.model.num_classes).overall /
                    double(table.seeds.size());
      }
    }
    row.figures = mean_over_seeds(per_seed);
    row.mean_confidence = confidence;
    if (conditional) row.cond_accuracy = accuracy;
    row.seconds = since(cell_start);
    if (comm.rank() == 0) {
      const double elapsed = since(start);
      spdlog::info("sweep {}/{}: ema {}, guide {}, w {:g}: FID {:.2f} +- {:.2f}, KID {:.2f} +- {:.2f}{} ({:.1f} s; "
                   "ETA {:.0f} s)",
                   c + 1, grid.size(), ema_text(row.ema_sigma_rel), guide_text(row, table.guide_run), row.guidance,
                   row.figures.fid.value, row.figures.fid.se, row.figures.kid.value, row.figures.kid.se,
                   conditional ? fmt::format(", conditional accuracy {:.2f}%", 100 * row.cond_accuracy) : "",
                   row.seconds, elapsed / double(c + 1) * double(grid.size() - c - 1));
    }
    table.rows.push_back(row);
  }
  mark_best(table);
  if (comm.rank() == 0) {
    io::write_sweep(io::run_file_path(cfg.out_dir()), table);
    const auto text = sweep_text(table, conditional);
    std::ofstream(cfg.out_dir() + "/sweep.txt") << text;
    spdlog::info("sweep ({:.0f} s):\n{}written: {} (/sweep), {}/sweep.txt", since(start), text,
                 io::run_file_path(cfg.out_dir()), cfg.out_dir());
  }
  comm.barrier();
  return table;
}

std::string sweep_text(const io::SweepTable& t, bool conditional) {
  auto pm = [](const io::Estimate& e) {
    return std::isfinite(e.value) ? fmt::format("{:.2f} ± {:.2f}", e.value, e.se) : std::string("-");
  };
  auto line = [&](const std::vector<std::string>& c) {
    return fmt::format("{:>6} {:<24} {:>5} {:>14} {:>14} {:>15} {:>9} {:>7} {:>10} {}{:>7} {:>7} {:>16} {}\n", c[0],
                       c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], conditional ? fmt::format("{:>10} ", c[9]) : "",
                       c[10], c[11], c[12], c[13]);
  };
  std::string out = line({"ema", "guide", "w", "FID", "KID", "FID at N=inf", "precision", "recall", "confidence",
                          "cond. acc.", "GFLOPs", "s", fmt::format("{} - best", t.metric == "fid" ? "FID" : "KID"), ""});
  for (std::size_t i = 0; i < t.rows.size(); ++i) {
    const auto& r = t.rows[i];
    out += line({ema_text(r.ema_sigma_rel), guide_text(r, t.guide_run), fmt::format("{:g}", r.guidance),
                 pm(r.figures.fid), pm(r.figures.kid), pm(r.figures.fid_inf), fmt::format("{:.3f}", r.figures.precision),
                 fmt::format("{:.3f}", r.figures.recall), fmt::format("{:.2f}%", 100 * r.mean_confidence),
                 fmt::format("{:.2f}%", 100 * r.cond_accuracy), fmt::format("{:.3f}", r.flops_per_sample / 1e9),
                 fmt::format("{:.1f}", r.seconds), i == t.best ? "" : pm({r.vs_best, r.vs_best_se}),
                 i == t.best ? "best" : r.within ? "~" : ""});
  }
  out += line({"real", "training images", "", pm(t.floor.fid), pm(t.floor.kid), pm(t.floor.fid_inf),
               fmt::format("{:.3f}", t.floor.precision), fmt::format("{:.3f}", t.floor.recall), "", "", "", "", "", ""});
  if (t.rows.empty()) return out;
  const auto& b = t.rows[t.best];
  std::size_t within = 0;
  for (const auto& r : t.rows) within += r.within ? 1 : 0;
  out += fmt::format("{} images x {} sample seed(s) per cell ({} x{}), weights of step {}; ± : standard errors of the "
                     "mean over the seeds\n",
                     t.num_samples, t.seeds.size(), t.sampler, t.steps, t.checkpoint_step);
  if (t.min_cond_accuracy > 0)
    out += t.met ? fmt::format("among the cells with a conditional accuracy of at least {:g}%:\n", 100 * t.min_cond_accuracy)
                 : fmt::format("no cell reaches a conditional accuracy of {:g}% (sweep.min_cond_accuracy); of all:\n",
                               100 * t.min_cond_accuracy);
  out += fmt::format("best by {}: {}: ema {}, guide {}, w {:g}{}\n", t.metric == "fid" ? "FID" : "KID",
                     pm(t.metric == "fid" ? b.figures.fid : b.figures.kid), ema_text(b.ema_sigma_rel),
                     guide_text(b, t.guide_run), b.guidance, b.guide.empty() ? "" : " (" + b.guide + ")");
  out += fmt::format("~: {} other cell(s) within two standard errors of it ({} - best: {})\n", within - 1,
                     t.metric == "fid" ? "FID" : "KID",
                     t.metric == "kid" ? "paired over the blocks of the same noise" : "errors taken as independent");
  std::string set = fmt::format("--set eval.ema_sigma_rel={:g} --set sample.guidance={:g}", b.ema_sigma_rel, b.guidance);
  if (b.guidance != 0.0 && !b.guide.empty())
    set += (t.guide_run.empty() ? "" : " --set sample.guide_run=" + t.guide_run) +
           fmt::format(" --set sample.guide_step={} --set sample.guide_ema_sigma_rel={:g}", b.guide_step,
                       b.guide_ema_sigma_rel);
  out += "to sample or evaluate with it: " + set + "\n";
  return out;
}

}  // namespace ddpm::eval
