// Typed run configuration. The YAML tree is read once, validated key by key, and only these
// plain structs flow down into the rest of the program.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace ddpm::config {

struct RunConfig {
  std::string name = "run";
  std::string out_dir;  // empty -> results/<name>
  std::uint64_t seed = 0;
  std::string device = "auto";   // auto | cpu | cuda
  std::string backend = "auto";  // auto | mpi | nccl
  int threads = 0;               // intra-op threads per rank; 0 = auto
  double collective_timeout_s = 600;  // a rank waiting longer in a collective ends the job; 0 = never
};

struct DataConfig {
  std::string dataset = "mnist";  // mnist | fashion_mnist
  std::string dir;                // empty: the data set's own folder (Config::data_dir)
};

struct ModelConfig {
  int base_channels = 32;
  std::vector<int> channel_mult{1, 2, 2};
  int num_res_blocks = 2;
  std::vector<int> attention_resolutions{14};
  bool mid_attention = true;
  int groups = 8;
  int time_embed_mult = 4;
  double dropout = 0.1;
  // 0: unconditional. N > 0: a class-conditional model with a learned embedding of N classes and
  // one more entry, index N, for "no class" (train.label_dropout, classifier-free guidance).
  int num_classes = 0;
  // The geometry of every MNIST-format data set (data::load_dataset checks it); not keys.
  int image_size = 28;
  int in_channels = 1;
};

// The first stage of latent diffusion: a KL-regularised convolutional autoencoder (model/autoencoder.hpp).
struct AutoencoderConfig {
  int base_channels = 32;
  // One entry per level; each level after the first halves the size (28 -> 14 -> 7), so the image
  // size must be divisible by 2^(levels - 1).
  std::vector<int> channel_mult{1, 2, 2};
  int num_res_blocks = 1;
  int latent_channels = 4;
  int groups = 8;
  // The weight of the KL term against the reconstruction's squared error, both summed over one
  // image (Rombach et al.'s convention: their 1e-6 means the same here).
  double kl_weight = 1e-6;
  // The stage's training (`ddpm_dist autoencoder`): these three; every other train.* key (warm-up,
  // schedule, clipping, EMA, precision, logging, checkpoints) is shared with the diffusion stage.
  std::int64_t steps = 2000;
  std::int64_t batch_size = 64;
  double lr = 1e-3;
};

struct DiffusionConfig {
  // pixel: the diffusion runs on the images. latent: on the latents of the run's autoencoder
  // (autoencoder.*, trained first by `ddpm_dist autoencoder`), standardised by their mean and
  // standard deviation over the training set, and samples are decoded to images.
  std::string space = "pixel";
  int timesteps = 1000;
  std::string schedule = "linear";  // linear | cosine
  double beta_start = 1e-4;
  double beta_end = 0.02;
  double cosine_s = 0.008;
  std::string prediction = "eps";  // what the network predicts (kind ddpm): eps | v | x0
  // ddpm: discrete timesteps; edm: Karras et al.'s preconditioned denoiser at continuous noise
  // levels, trained on a log-normal sigma (its samplers walk the noise levels of the schedule above).
  std::string kind = "ddpm";
  double sigma_data = 0.5;  // edm: the data's standard deviation in c_skip, c_out, c_in
  double p_mean = -1.2;     // edm: ln sigma ~ N(p_mean, p_std^2) in training
  double p_std = 1.2;
};

struct TrainConfig {
  std::int64_t steps = 1000;
  std::int64_t batch_size = 128;  // global, over all ranks
  // Rows per forward pass on a rank (gradient accumulation); 0: the rank's whole share at once.
  std::int64_t micro_batch = 0;
  double lr = 2e-4;
  std::int64_t warmup_steps = 100;
  std::string lr_schedule = "constant";  // after warm-up: constant | cosine (from lr down to lr_min at the last step)
  double lr_min = 0.0;                   // cosine's floor
  std::string loss_weighting = "none";   // none | min_snr (Hang et al. 2023), in the prediction's form
  double min_snr_gamma = 5.0;
  double weight_decay = 0.0;  // > 0: AdamW's decoupled decay (each step p -= lr x weight_decay x p)
  double grad_clip = 1.0;  // max global L2 norm; 0 disables
  double ema_decay = 0.999;
  double ema_share = 0.0;  // > 0: the EMA's half-life is this share of the steps done so far (ema_decay unused)
  // Post-hoc EMA (model/power_ema.hpp): the lengths of the power-function EMAs tracked beside the EMA
  // (empty: none), and the steps between their snapshots (0: at each checkpoint).
  std::vector<double> phema_sigma_rels;
  std::int64_t phema_snapshot_every = 0;
  std::int64_t log_every = 50;
  std::int64_t checkpoint_every = 1000;
  int keep_checkpoints = 3;
  double bucket_mb = 1.0;  // gradient all-reduce bucket size
  bool overlap = true;     // all-reduce buckets during backward (false: after it)
  bool balance = true;     // CPU ranks: split each global batch by measured rank speed (train/batch_balance.hpp)
  std::string precision = "fp32";  // fp32 | bf16 (autocast; norms, softmax, loss and state in fp32) | auto
  int max_bad_steps = 5;  // non-finite steps in a row that are skipped before the run stops
  bool cuda_graphs = false;  // replay forward + backward as one captured CUDA graph (CUDA only)
  std::string on_write_error = "stop";  // a failed checkpoint or run.h5 write: stop | continue
  // Conditional models: the share of examples trained with "no class" instead of their label, the
  // unconditional half that classifier-free guidance needs.
  double label_dropout = 0.0;
};

// sample.labels of a class-conditional model: which class image i is asked for.
struct LabelChoice {
  // balanced: class i mod num_classes (equal counts, a fixed order); random: drawn from (seed, i);
  // none: "no class" (the model's unconditional mode); list: `classes`, cycled over the images.
  std::string mode = "balanced";
  std::vector<int> classes;
};
// "balanced", "random", "none" or the list as "[7, 1]", for messages.
std::string describe(const LabelChoice& labels);

struct SampleConfig {
  std::int64_t num_samples = 1000;
  std::string sampler = "ddim";  // ddpm | ddim | heun | dpmpp_2m
  int steps = 50;                // network evaluations per image (ddpm: must equal timesteps)
  double eta = 0.0;
  std::string variance = "posterior";  // ddpm sigma^2: beta | posterior
  std::int64_t batch_size = 250;       // per rank
  bool clip_x0 = true;
  std::string precision = "fp32";  // fp32 | bf16 (autocast, as train.precision) | auto
  bool cuda_graphs = false;        // replay each batch size's forward pass as a CUDA graph (CUDA only)
  LabelChoice labels;              // conditional models: balanced | random | none | [class, ...]
  // Guidance weight w: (1 + w) D(x, class) - w D_guide, where D_guide is the model's own unconditional
  // output (classifier-free) or, with autoguidance, the guide model's; 0 = the model alone.
  double guidance = 0.0;
  // Autoguidance (Karras et al. 2024, eval/guide.hpp): the guide is a weaker version of the model.
  // guide_run: another run's folder ("" : this run); guide_step: its weights at that step (0: none for
  // this run, the newest for another run); guide_ema_sigma_rel: the guide's post-hoc EMA length (0:
  // the checkpoint's EMA).
  std::string guide_run;
  std::int64_t guide_step = 0;
  double guide_ema_sigma_rel = 0.0;
  bool autoguided() const { return !guide_run.empty() || guide_step > 0; }
};

// `seeds` as sample seeds; empty: run_seed alone.
std::vector<std::uint64_t> sample_seeds(const std::vector<std::int64_t>& seeds, std::uint64_t run_seed);

struct EvalConfig {
  std::string classifier;  // empty: results/classifier_<data.dataset>.h5; trained on first use, reused after
  int classifier_epochs = 0;             // 0: the data set's (DatasetProfile)
  std::string classifier_augment = "auto";  // auto (the data set's) | none | shift | shift_flip
  std::uint64_t classifier_seed = 0;
  std::string weights = "ema";  // ema | raw | both
  // > 0: the EMA weights evaluated are post-hoc EMA's reconstruction of this length from the run's
  // snapshots (train.phema_sigma_rels), not the checkpoint's EMA; 0: the checkpoint's.
  double ema_sigma_rel = 0.0;
  std::int64_t batch_size = 500;  // images per classifier forward pass
  int trajectory_images = 8;      // rows of forward.png and reverse.png
  std::int64_t every = 0;             // evaluate the EMA weights every N training steps; 0: never
  std::int64_t during_samples = 500;  // samples per evaluation during training
  // Conditional models: the guidance weights the final evaluation measures, each in its own
  // /eval/<weights>/guidance_<w>; empty: sample.guidance alone.
  std::vector<double> guidance;
  // The sample seeds of the final evaluation: each samples anew with its own noise from the same
  // weights, and the report gives the mean and the spread; empty: run.seed alone.
  std::vector<std::int64_t> seeds;
  std::vector<std::uint64_t> sample_seeds(std::uint64_t run_seed) const;
};

// `ddpm_dist sweep` (eval/sweep.hpp): the grid of sampling settings it measures on a trained run.
struct SweepConfig {
  std::vector<double> ema_sigma_rels{0.0};       // the model's EMA lengths (0: the checkpoint's EMA)
  std::vector<std::int64_t> guide_steps{0};      // as sample.guide_step (0 with no guide_run: no guide)
  std::vector<double> guide_ema_sigma_rels{0.0};  // as sample.guide_ema_sigma_rel
  std::vector<double> guidances{0.0};            // as sample.guidance
  std::int64_t num_samples = 1000;               // images per cell and seed
  std::vector<std::int64_t> seeds;               // sample seeds; empty: run.seed
  std::string metric = "kid";                    // kid | fid: what names the best cell
  double min_cond_accuracy = 0.0;                // conditional models: the best is among cells at least this accurate
  std::vector<std::uint64_t> sample_seeds(std::uint64_t run_seed) const;
};

struct Config {
  RunConfig run;
  DataConfig data;
  ModelConfig model;
  AutoencoderConfig autoencoder;
  DiffusionConfig diffusion;
  TrainConfig train;
  SampleConfig sample;
  EvalConfig eval;
  SweepConfig sweep;

  std::string source;  // the file it came from, for messages
  std::string yaml;    // the resolved configuration as YAML text

  std::string out_dir() const { return run.out_dir.empty() ? "results/" + run.name : run.out_dir; }
  bool latent() const { return diffusion.space == "latent"; }
  // data.dir, or where launch/setup.sh puts the data set: data/mnist (fetched and verified), or
  // Debian's dataset-fashion-mnist package.
  std::string data_dir() const;
  // eval.classifier, or results/classifier_<data.dataset>.h5: one classifier per data set.
  std::string classifier_path() const;
  // classifier_path() without its .h5: the classifier's feature cache (<stem>_features.h5) and
  // training folder (<stem>_training) are named after it.
  std::string classifier_stem() const;
  // The classifier's recipe: eval.classifier_epochs and eval.classifier_augment, or the data set's.
  int classifier_epochs() const;
  std::string classifier_augment() const;
};

// What ddpm_dist has measured for each data set it names (docs/datasets.md): where
// launch/setup.sh installs it, the evaluation classifier's training recipe, and the configuration
// files whose defaults were chosen on it. A third data set is one more entry.
struct DatasetProfile {
  std::string name;        // data.dataset
  std::string dir;         // the default data.dir
  int classifier_epochs;   // epochs of the evaluation classifier
  // Label-preserving augmentation of its training images: shifts of up to 2 pixels, and for
  // shift_flip mirror images too (a mirrored garment is the same garment, a mirrored digit is not).
  std::string classifier_augment;
  std::vector<std::string> configs;  // file names in configs/ measured on it
};
const std::vector<DatasetProfile>& dataset_profiles();
// Throws config::Error for a name no profile has.
const DatasetProfile& dataset_profile(const std::string& name);
// A warning where cfg's file (cfg.source) was measured on another data set than data.dataset,
// naming the file measured for it; empty otherwise (also for files measured on none).
std::string unmeasured_dataset_warning(const Config& cfg);

// The configuration of the autoencoder stage: `cfg` with train.steps, train.batch_size and train.lr
// from autoencoder.*, writing its checkpoints and history to <cfg.out_dir()>/autoencoder.
Config autoencoder_stage(const Config& cfg);

// The autoencoder's latent shape [C, H, W] for `cfg`'s images: each level after the first halves the size.
std::vector<std::int64_t> latent_shape(const Config& cfg);
// What the diffusion model works on, [C, H, W]: the images', or in latent space latent_shape.
std::vector<std::int64_t> diffusion_shape(const Config& cfg);
// cfg.model with the image size and channels of diffusion_shape: what the U-Net is built from.
ModelConfig unet_config(const Config& cfg);
// The configuration of the evaluation classifier's training through train::Trainer
// (train::ClassifierTask): cfg.classifier_epochs() over `train_images` in global batches of 128,
// Adam at 1e-3 with a cosine decay, fp32, seeded by eval.classifier_seed, its checkpoints and
// history in <classifier path without .h5>_training.
Config classifier_stage(const Config& cfg, std::int64_t train_images);

// The one rule for which keys define what a network's weights mean: a checkpoint is read (to
// resume, sample, evaluate, or decode latents) only under the values it was trained with.
// The diffusion model: model.*, diffusion.* but the training distribution of EDM's noise levels
// (p_mean, p_std), data.dataset, and in latent space the autoencoder's.
bool defines_diffusion(const Config& cfg, const std::string& key);
// The autoencoder: autoencoder.* but its training keys (steps, batch_size, lr), and data.dataset.
bool defines_autoencoder(const std::string& key);
// The evaluation classifier: data.dataset (its architecture is fixed).
bool defines_classifier(const std::string& key);
// What an autoguidance guide from another run shares with the model it guides: data.dataset,
// model.num_classes and the noise process (diffusion.* but what D hides: the prediction, EDM's
// sigma_data and its training levels). Its architecture may differ.
bool guide_must_match(const std::string& key);

// Parses a YAML file, applies "section.key=value" overrides, validates every key and value.
// Throws ConfigError with the file, the key and what is allowed.
Config load(const std::string& path, const std::vector<std::string>& overrides = {});
Config parse(const std::string& yaml_text, const std::string& source,
             const std::vector<std::string>& overrides = {});

// The keys whose values differ between a resolved configuration stored earlier (a checkpoint's)
// and `current`; keys that only one of them has are left out (added or removed since).
struct KeyChange {
  std::string key, before, now;
};
std::vector<KeyChange> changed_keys(const std::string& stored_yaml, const Config& current);
// "section.key" -> whether a change of it changes what a network's weights mean.
using KeyFilter = std::function<bool(const std::string& key)>;
// The model.* keys.
bool is_model_key(const std::string& key);
// The keys for which `defining` holds (empty: is_model_key) that differ, a key the stored
// configuration lacks counting as its default (older files): what makes a checkpoint's weights
// another architecture.
std::vector<KeyChange> changed_defining_keys(const std::string& stored_yaml, const Config& current,
                                             const KeyFilter& defining = {});

}  // namespace ddpm::config
