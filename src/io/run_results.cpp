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
    if (attrs.labels.defined()) {
      write_attr(ds, "guidance", attrs.guidance);
      write_array(g, "labels", attrs.labels.to(torch::kInt64), "the class each image was asked for (int64 [N])");
    }
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
    write_attr(floor, "description", "the same measures of as many real training images as samples: what real digits score at this N");
    write_figures(floor, r.floor, "", "");
    write_scalar(g, "fid_floor", r.floor.fid.value,
                 "the same distance for as many real training images as samples: what real digits score at this N");
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
                   "the first stage alone does to real digits (samples can score lower)");
    if (r.conditional) {
      write_attr(g, "guidance", r.guidance);
      write_array(g, "labels_asked", r.labels_asked, "the class each sample was asked for");
      write_scalar(g, "cond_accuracy", r.cond_accuracy,
                   "share of samples that the classifier assigns to the class asked for");
      write_array(g, "class_accuracy", torch::tensor(r.class_accuracy, torch::kFloat64),
                  "cond_accuracy of the samples asked for each class 0..9 (NaN: none asked)");
    }
  });
}

std::string guidance_group(double w) { return fmt::format("guidance_{:g}", w); }

std::string eval_group(const EvalRecord& r) {
  return "eval/" + r.weights + (r.conditional ? "/" + guidance_group(r.guidance) : "");
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
