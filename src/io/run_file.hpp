// results/<run>/run.h5: the run's configuration, metric histories and samples (and, later,
// evaluation results). Every change rewrites the file atomically (copy, change, fsync, rename), so
// a reader can open it at any time during training and a crash leaves the previous version.
#pragma once

#include <torch/types.h>

#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "io/figures.hpp"

namespace H5 {
class Group;
}

namespace ddpm::io {

struct MetricsRow {
  double step = 0, loss = 0, lr = 0, grad_norm = 0, img_per_s = 0, wall_s = 0;
};

// One evaluation during training (eval.every).
struct EvalHistoryRow {
  double step = 0, train_wall_s = 0, fid = 0, fid_floor = 0, mean_confidence = 0, classes_present = 0, eval_s = 0;
  double fid_se = 0, kid = 0, kid_se = 0, fid_inf = 0, fid_inf_se = 0, precision = 0, recall = 0, memorised = 0;
};

struct SampleAttrs {
  std::string sampler;
  std::int64_t steps = 0;
  double eta = 0;
  bool ema = true;
  std::int64_t checkpoint_step = 0;
  std::uint64_t seed = 0;
  // Conditional models: each image's class (long [N]) and the guidance weight; undefined labels:
  // an unconditional model.
  torch::Tensor labels;
  double guidance = 0;
  // The EMA's length where it is post-hoc EMA's reconstruction (eval.ema_sigma_rel); 0: the
  // checkpoint's EMA (or the raw weights).
  double ema_sigma_rel = 0;
  // Autoguidance: the guide (eval::Guide::describe), whose weight is `guidance`; empty: none.
  std::string guide;
};

std::string run_file_path(const std::string& run_dir);

// The autoencoder stage's result (ddpm_dist autoencoder), in its run.h5 under /autoencoder: the
// latents' statistics over the training set, which scale them to unit variance before diffusion,
// and the reconstruction error on the test set. The EMA weights of checkpoint `step` made them.
struct AutoencoderSummary {
  std::int64_t step = 0;
  std::int64_t images = 0;  // training images encoded
  double latent_mean = 0, latent_std = 0;
  double test_mse = 0;  // per pixel, images in [-1, 1], decoding the posterior mean
  // uint8 [2, K, H, W]: the first K test images and their reconstructions (written, not read back).
  torch::Tensor reconstructions{};
};
void write_autoencoder_summary(const std::string& path, const AutoencoderSummary& summary);
// Nothing when the file has no summary (the stage has not finished).
std::optional<AutoencoderSummary> read_autoencoder_summary(const std::string& path);

// /config with attributes yaml, created, version, torch, world_size.
void write_run_config(const std::string& path, const std::string& yaml, int world_size);

// Where and how the latest training start ran, for the report: attributes of /launch.
struct Launch {
  std::string command;        // as typed, with `mpirun -np W` in front when W > 1
  std::string host, cpu;      // rank 0's host name and CPU model
  std::string device, backend;
  std::string ranks_by_host;  // dist::Context::placement()
  std::int64_t ranks = 1, threads = 1;
};
void write_launch(const std::string& path, const Launch& launch);
// /wall_time/seconds float64 [S], the stage names in its attribute `stages` (comma-separated, in
// the order of the log's "wall time:" line).
void write_wall_time(const std::string& path, const std::vector<std::pair<std::string, double>>& stages);
void append_train_metrics(const std::string& path, const std::vector<MetricsRow>& rows);
std::vector<MetricsRow> read_train_metrics(const std::string& path);
// Drops the rows after `step`, so that a resumed run continues the history without duplicates.
void truncate_train_metrics(const std::string& path, std::int64_t step);
// /eval_history/{step, train_wall_s, fid, ...} and /eval_history/grids (uint8 [rows, H, W]): a row
// and a picture per evaluation during training.
// `classifier`: the fingerprint of the evaluation classifier's weights (attribute classifier_fingerprint).
void append_eval_history(const std::string& path, const EvalHistoryRow& row, const torch::Tensor& grid_u8,
                         const std::string& classifier);
std::vector<EvalHistoryRow> read_eval_history(const std::string& path);
// Drops the evaluations after `step` (a resumed run).
void truncate_eval_history(const std::string& path, std::int64_t step);
// The run's histories up to a step: what a checkpoint carries beside the weights (its /history
// group, laid out as run.h5's /train and /eval_history), so that run.h5, the one file with no
// second copy, can be rebuilt from the newest checkpoint that verifies.
struct RunHistory {
  std::vector<MetricsRow> train;
  std::vector<EvalHistoryRow> evals;
  torch::Tensor grids;     // uint8 [evals, H, W]; undefined without evaluations
  std::string classifier;  // /eval_history's classifier_fingerprint
};
// run.h5's histories (throws Error where the file does not read).
RunHistory read_run_history(const std::string& path);
// Writes `history` into `parent` as the groups train and eval_history.
void write_run_history(H5::Group& parent, const RunHistory& history);
// A checkpoint's /history; nothing where it has none (written before checkpoints carried it).
std::optional<RunHistory> read_checkpoint_history(const std::string& checkpoint);
// Checks <run_dir>/run.h5 (every checksum); where it does not verify, renames it to
// run.h5.damaged-<UTC time> and writes a new one with the histories of `checkpoint` (the one the
// run continues from; empty: none). Returns the warning to print, or "" where run.h5 verified or
// does not exist.
std::string recover_run_file(const std::string& run_dir, const std::string& checkpoint);

// /samples/images uint8 [N, H, W] with its settings as attributes, and for a conditional model
// /samples/labels, the class each image was asked for.
void write_samples(const std::string& path, const torch::Tensor& images_u8, const SampleAttrs& attrs);

struct EvalRecord {
  std::string weights;  // ema | raw: the group /eval/<weights>
  // Conditional models: the group is /eval/<weights>/guidance_<w>, with the classes asked for,
  // the share of samples classified as asked, and that share per class (NaN: none asked).
  bool conditional = false;
  // Guided records (conditional or autoguided) are /eval/<weights>/guidance_<w>; `guide`: the
  // autoguidance guide (eval::Guide::describe), empty for classifier-free guidance or none.
  bool guided = false;
  double guidance = 0;
  std::string guide;
  torch::Tensor labels_asked;  // int64 [N]
  double cond_accuracy = 0;
  std::vector<double> class_accuracy;
  double mean_confidence = 0, classes_present = 0;
  // Each sample seed's measures (eval.seeds), in order; `figures` is their mean, with the standard
  // error of that mean. `floor`: the measures of as many real training images.
  std::vector<std::uint64_t> seeds;
  std::vector<FeatureFigures> per_seed;
  FeatureFigures figures, floor;
  std::string classifier_fingerprint;  // io::weights_fingerprint of the classifier measured with
  std::vector<std::int64_t> class_histogram;
  torch::Tensor gen_features;  // float32 [N, D]
  torch::Tensor images_u8;     // uint8 [N, H, W]: the samples of the first seed (rank 0)
  torch::Tensor labels_pred;   // int64 [N]
  std::int64_t n_samples = 0;
  std::string sampler;
  std::int64_t steps = 0;
  double eta = 0;
  std::int64_t checkpoint_step = 0;
  double ema_sigma_rel = 0;  // as in SampleAttrs
  double classifier_test_accuracy = 0;
  std::string classifier_path;
  std::string dataset;  // data.dataset: the classifier's and the reference set's
  // Latent space: the FID of the autoencoder's reconstructions of the floor's training images (what
  // the first stage alone does to real images, not a bound on the samples' FID); NaN (not written)
  // in pixel space.
  double reconstruction_fid = std::numeric_limits<double>::quiet_NaN();
  // Network FLOPs per sample (model::network_evaluations x the U-Net's, twice with guidance, plus
  // the decoder's in latent space), counted from the layer shapes.
  double flops_per_sample = 0;
};

// /eval/ref_mu, /eval/ref_sigma (float64) and eval_group(record)/{fid, fid_se, kid, kid_se,
// fid_inf, fid_inf_se, precision, recall, memorised (the mean over the sample seeds), per_seed/<the
// same> [S], floor/<the same>, fid_floor (floor/fid), mean_confidence, classes_present, class_histogram,
// gen_features, labels_pred, images} (the last five of the first seed) with the settings as attributes;
// conditional records add {labels_asked, cond_accuracy, class_accuracy}.
std::string eval_group(const EvalRecord& record);
// "guidance_<w>", w printed shortest ("guidance_0.5", "guidance_2").
std::string guidance_group(double w);
void write_eval(const std::string& path, const torch::Tensor& ref_mu, const torch::Tensor& ref_sigma,
                std::int64_t ref_count, const EvalRecord& record);

// `ddpm_dist sweep`'s grid (eval/sweep.hpp): a row per cell, its settings and what it measured.
struct SweepRow {
  double ema_sigma_rel = 0;        // the model's EMA length (0: the checkpoint's EMA)
  std::int64_t guide_step = 0;     // autoguidance: the guide's step (0 with no guide run: no guide model)
  double guide_ema_sigma_rel = 0;  // autoguidance: the guide's EMA length (0: its checkpoint's EMA)
  double guidance = 0;
  std::string guide;               // the guide's description; empty: classifier-free guidance or none
  FeatureFigures figures;          // the mean over the sample seeds, with its standard error
  double mean_confidence = 0;
  double cond_accuracy = std::numeric_limits<double>::quiet_NaN();  // conditional models
  double flops_per_sample = 0, seconds = 0;
  // KID on each block of every seed's samples (eval::kid_blocks, seed after seed): rows drawn from
  // the same noise are compared block by block.
  std::vector<double> kid_blocks;
  // Its metric minus the best row's, with the standard error of that difference; `within`: at most
  // two of them.
  double vs_best = 0, vs_best_se = 0;
  bool within = false;
};
struct SweepTable {
  std::vector<SweepRow> rows;
  std::string metric;  // kid | fid: what names the best
  std::size_t best = 0;
  // The best is among rows with cond_accuracy >= this (0: all); `met`: some row reached it.
  double min_cond_accuracy = 0;
  bool met = true;
  FeatureFigures floor;  // as many real training images as samples
  std::int64_t checkpoint_step = 0, num_samples = 0;
  std::vector<std::uint64_t> seeds;
  std::string sampler, guide_run;
  std::int64_t steps = 0;
};
// Replaces /sweep: a column per field (float64 [cells]; `guide` as one attribute per row in
// /sweep/guides), the settings and the best row as attributes.
void write_sweep(const std::string& path, const SweepTable& table);
// /trajectory/<name>: uint8 [rows, columns, H, W] with the timestep of each column.
void write_trajectory(const std::string& path, const std::string& name, const torch::Tensor& frames_u8,
                      const std::vector<std::int64_t>& timesteps, const std::string& description);

}  // namespace ddpm::io
