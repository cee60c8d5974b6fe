// The results that run.h5 holds beside its histories: the samples, the final evaluation and the
// trajectories of the forward and reverse processes.
#include <fmt/format.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "io/h5.hpp"
#include "io/run_file.hpp"
#include "util/clock.hpp"
#include "util/error.hpp"

namespace ddpm::io {

namespace {
struct FigureField {
  const char* name;
  double (*get)(const FeatureFigures&);
  const char* description;
};
const std::array<FigureField, 9> kFigureFields{{
    {"fid", [](const FeatureFigures& f) { return f.fid.value; }, "Frechet distance to the test set's features"},
    {"fid_se", [](const FeatureFigures& f) { return f.fid.se; }, "standard error of fid: bootstrap over the samples"},
    {"kid", [](const FeatureFigures& f) { return f.kid.value; },
     "kernel inception distance: unbiased squared MMD, cubic kernel, against test features"},
    {"kid_se", [](const FeatureFigures& f) { return f.kid.se; }, "standard error of kid: 10 disjoint blocks"},
    {"fid_inf", [](const FeatureFigures& f) { return f.fid_inf.value; },
     "FID extrapolated to infinite N: intercept of FID against 1/N over subsets"},
    {"fid_inf_se", [](const FeatureFigures& f) { return f.fid_inf.se; }, "standard error of fid_inf"},
    {"precision", [](const FeatureFigures& f) { return f.precision; },
     "share of samples on the manifold of as many test images (k = 3)"},
    {"recall", [](const FeatureFigures& f) { return f.recall; }, "share of those test images on the samples' manifold (k = 3)"},
    {"memorised", [](const FeatureFigures& f) { return f.memorised; },
     "share of samples nearer their nearest training image than 99% of test images are"},
}};

std::string join(const std::vector<std::uint64_t>& v) {
  std::string out;
  for (auto x : v) out += (out.empty() ? "" : ",") + std::to_string(x);
  return out;
}

void write_figures(H5::Group& g, const FeatureFigures& f, const std::string& value_note, const std::string& se_note) {
  for (const auto& field : kFigureFields) {
    const std::string name = field.name;
    const bool is_se = name.size() > 3 && name.compare(name.size() - 3, 3, "_se") == 0;
    write_scalar(g, name, field.get(f), field.description + (is_se ? se_note : value_note));
  }
}
}  // namespace

void write_samples(const std::string& path, const torch::Tensor& images_u8, const SampleAttrs& attrs) {
  update_atomically(path, [&](H5::H5File& file) {
    if (file.nameExists("samples")) file.unlink("samples");
    auto g = file.createGroup("samples");
    write_tensor(g, "images", images_u8);
    auto ds = g.openDataSet("images");
    write_attr(ds, "description", std::string("generated images, uint8 [N, H, W], 0 = black, 255 = white"));
    write_attr(ds, "sampler", attrs.sampler);
    write_attr(ds, "steps", attrs.steps);
    write_attr(ds, "eta", attrs.eta);
    write_attr(ds, "ema", std::int64_t{attrs.ema});
    write_attr(ds, "checkpoint_step", attrs.checkpoint_step);
    if (attrs.ema) write_attr(ds, "ema_sigma_rel", attrs.ema_sigma_rel);
    write_attr(ds, "seed", static_cast<std::int64_t>(attrs.seed));
    if (attrs.labels.defined() || !attrs.guide.empty()) write_attr(ds, "guidance", attrs.guidance);
    if (!attrs.guide.empty()) write_attr(ds, "guide", attrs.guide);
    if (attrs.labels.defined())
      write_array(g, "labels", attrs.labels.to(torch::kInt64), "the class each image was asked for (int64 [N])");
  });
}

void write_eval(const std::string& path, const torch::Tensor& ref_mu, const torch::Tensor& ref_sigma,
                std::int64_t ref_count, const EvalRecord& r) {
  update_atomically(path, [&](H5::H5File& file) {
    auto eval = open_or_create(file, "eval");
    write_attr(eval, "description", "evaluation in the feature space of the project's " + r.dataset + " classifier");
    write_attr(eval, "feature_extractor", r.classifier_path);
    write_attr(eval, "classifier_test_accuracy", r.classifier_test_accuracy);
    write_attr(eval, "classifier_fingerprint", r.classifier_fingerprint);
    write_attr(eval, "reference", r.dataset + " test set, " + std::to_string(ref_count) + " images");
    write_array(eval, "ref_mu", ref_mu, "mean of the reference features");
    write_array(eval, "ref_sigma", ref_sigma, "unbiased covariance of the reference features");
    auto g = open_or_create(file, eval_group(r));
    const std::string several = r.seeds.size() > 1 ? " (the mean over the sample seeds)" : "";
    write_figures(g, r.figures, several, r.seeds.size() > 1 ? " of the mean" : "");
    write_attr(g, "sample_seeds", join(r.seeds));
    write_attr(g, "classifier_fingerprint", r.classifier_fingerprint);
    if (r.seeds.size() > 1) {
      auto per_seed = open_or_create(file, eval_group(r) + "/per_seed");
      write_attr(per_seed, "description", "each sample seed's measures, in the order of the attribute sample_seeds");
      write_attr(per_seed, "sample_seeds", join(r.seeds));
      for (const auto& field : kFigureFields) {
        std::vector<double> v;
        for (const auto& f : r.per_seed) v.push_back(field.get(f));
        write_array(per_seed, field.name, torch::tensor(v, torch::kFloat64), field.description);
      }
    }
    auto floor = open_or_create(file, eval_group(r) + "/floor");
    write_attr(floor, "description", "the same measures of as many real training images as samples: what real images score at this N");
    write_figures(floor, r.floor, "", "");
    write_scalar(g, "fid_floor", r.floor.fid.value,
                 "the same distance for as many real training images as samples: what real images score at this N");
    write_scalar(g, "mean_confidence", r.mean_confidence, "mean over samples of the classifier's max softmax");
    write_scalar(g, "classes_present", r.classes_present, "fraction of the 10 classes predicted at least once");
    write_array(g, "class_histogram", torch::tensor(r.class_histogram, torch::kInt64), "predicted-class counts, 0..9");
    write_array(g, "gen_features", r.gen_features, "classifier features of the generated samples [N, D]");
    if (r.images_u8.defined())
      write_array(g, "images", r.images_u8, "the samples measured (of the first sample seed), uint8 [N, H, W], 0 = black");
    write_array(g, "labels_pred", r.labels_pred, "predicted class of each generated sample");
    write_attr(g, "n_samples", r.n_samples);
    write_attr(g, "weights", r.weights);
    write_attr(g, "sampler", r.sampler);
    write_attr(g, "steps", r.steps);
    write_attr(g, "eta", r.eta);
    write_attr(g, "checkpoint_step", r.checkpoint_step);
    if (r.weights == "ema") write_attr(g, "ema_sigma_rel", r.ema_sigma_rel);
    write_attr(g, "flops_per_sample", r.flops_per_sample);
    if (std::isfinite(r.reconstruction_fid))
      write_scalar(g, "reconstruction_fid", r.reconstruction_fid,
                   "the same distance for the autoencoder's reconstructions of the floor's training images: what "
                   "the first stage alone does to real images (samples can score lower)");
    if (r.guided) write_attr(g, "guidance", r.guidance);
    if (!r.guide.empty()) write_attr(g, "guide", r.guide);
    if (r.conditional) {
      write_array(g, "labels_asked", r.labels_asked, "the class each sample was asked for");
      write_scalar(g, "cond_accuracy", r.cond_accuracy,
                   "share of samples that the classifier assigns to the class asked for");
      write_array(g, "class_accuracy", torch::tensor(r.class_accuracy, torch::kFloat64),
                  "cond_accuracy of the samples asked for each class 0..9 (NaN: none asked)");
    }
  });
}

void write_sweep(const std::string& path, const SweepTable& t) {
  update_atomically(path, [&](H5::H5File& file) {
    if (file.nameExists("sweep")) file.unlink("sweep");
    auto g = file.createGroup("sweep");
    write_attr(g, "description",
               "ddpm_dist sweep: a row per cell of the grid (EMA length x guide x guidance weight), each measured on "
               "num_samples images per sample seed; figures are means over the seeds with their standard errors");
    write_attr(g, "metric", t.metric);
    write_attr(g, "best", static_cast<std::int64_t>(t.best));
    write_attr(g, "min_cond_accuracy", t.min_cond_accuracy);
    write_attr(g, "min_cond_accuracy_met", std::int64_t{t.met});
    write_attr(g, "checkpoint_step", t.checkpoint_step);
    write_attr(g, "num_samples", t.num_samples);
    write_attr(g, "sample_seeds", join(t.seeds));
    write_attr(g, "sampler", t.sampler);
    write_attr(g, "steps", t.steps);
    write_attr(g, "guide_run", t.guide_run);
    auto column = [&](const std::string& name, auto get, const std::string& description) {
      std::vector<double> v;
      for (const auto& r : t.rows) v.push_back(double(get(r)));
      write_array(g, name, torch::tensor(v, torch::kFloat64), description);
    };
    column("ema_sigma_rel", [](const SweepRow& r) { return r.ema_sigma_rel; }, "the model's EMA length (0: the checkpoint's EMA)");
    column("guide_step", [](const SweepRow& r) { return r.guide_step; }, "the guide's training step (0: no guide model, or another run's newest)");
    column("guide_ema_sigma_rel", [](const SweepRow& r) { return r.guide_ema_sigma_rel; }, "the guide's EMA length (0: its checkpoint's EMA)");
    column("guidance", [](const SweepRow& r) { return r.guidance; }, "the guidance weight");
    for (const auto& field : kFigureFields)
      column(field.name, [&](const SweepRow& r) { return field.get(r.figures); }, field.description);
    column("mean_confidence", [](const SweepRow& r) { return r.mean_confidence; }, "mean over samples of the classifier's max softmax");
    column("cond_accuracy", [](const SweepRow& r) { return r.cond_accuracy; }, "share of samples classified as the class asked for (NaN: unconditional)");
    column("flops_per_sample", [](const SweepRow& r) { return r.flops_per_sample; }, "network FLOPs per sample");
    column("seconds", [](const SweepRow& r) { return r.seconds; }, "wall time of the cell (sampling and measures, all seeds)");
    column("vs_best", [](const SweepRow& r) { return r.vs_best; }, "the metric minus the best row's");
    column("vs_best_se", [](const SweepRow& r) { return r.vs_best_se; },
           "standard error of vs_best (kid: from the blocks' paired differences)");
    column("within", [](const SweepRow& r) { return r.within ? 1.0 : 0.0; }, "1: vs_best within two standard errors");
    if (!t.rows.empty() && !t.rows.front().kid_blocks.empty()) {
      std::vector<torch::Tensor> blocks;
      for (const auto& r : t.rows) blocks.push_back(torch::tensor(r.kid_blocks, torch::kFloat64));
      write_array(g, "kid_blocks", torch::stack(blocks),
                  "KID of each block of each seed's samples [cells, seeds x blocks]: rows share their noise, so their "
                  "blocks pair");
    }
    auto guides = g.createGroup("guides");
    write_attr(guides, "description", "row_<i>: the guide of row i (autoguidance); absent: classifier-free guidance or none");
    for (std::size_t i = 0; i < t.rows.size(); ++i)
      if (!t.rows[i].guide.empty()) write_attr(guides, "row_" + std::to_string(i), t.rows[i].guide);
    auto floor = g.createGroup("floor");
    write_attr(floor, "description", "the same measures of as many real training images as samples");
    write_figures(floor, t.floor, "", "");
  });
}

std::string guidance_group(double w) { return fmt::format("guidance_{:g}", w); }

std::string eval_group(const EvalRecord& r) {
  return "eval/" + r.weights + (r.guided ? "/" + guidance_group(r.guidance) : "");
}

void write_trajectory(const std::string& path, const std::string& name, const torch::Tensor& frames_u8,
                      const std::vector<std::int64_t>& timesteps, const std::string& description) {
  update_atomically(path, [&](H5::H5File& file) {
    auto g = open_or_create(file, "trajectory");
    write_array(g, name, frames_u8, description);
    write_array(g, name + "_timesteps", torch::tensor(timesteps, torch::kInt64),
                "timestep of each column of " + name + " (0-based; T = pure noise, -1 = the final sample)");
  });
}


}  // namespace ddpm::io
