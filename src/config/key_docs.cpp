// The configuration reference: what each key of the key table (config/key_table.hpp) means. The
// README's reference is this table as `ddpm_dist keys` prints it (a test keeps them equal).
#include "config/key_docs.hpp"

#include <fmt/format.h>

#include <map>
#include <set>

#include "config/key_table.hpp"
#include "util/error.hpp"

namespace ddpm::config {
namespace {

// Renders each key's default from a default Config, as the README shows it.
struct DefaultText {
  std::string current;
  std::map<std::string, std::string> text;
  void section(const char* s) { current = s; }
  template <class T>
  void field(const char* k, T& value) {
    text[current + "." + k] = render(value);
  }
  static std::string render(const std::string& v) { return "`" + v + "`"; }
  static std::string render(bool v) { return v ? "true" : "false"; }
  static std::string render(const LabelChoice& v) { return "`" + v.mode + "`"; }
  template <class T>
  static std::string render(const std::vector<T>& v) {
    return fmt::format("`[{}]`", fmt::join(v, ", "));
  }
  template <class T>
  static std::string render(const T& v) {
    return fmt::format("{}", v);
  }
};

}  // namespace

const std::vector<KeyDoc>& key_docs() {
  static const std::vector<KeyDoc> docs = {
      {{"run.name"}, R"doc()doc",
       R"doc(name of the run; results go to `results/<name>`)doc"},
      {{"run.out_dir"}, R"doc(`results/<run.name>`)doc",
       R"doc(where checkpoints and samples go)doc"},
      {{"run.seed"}, R"doc()doc",
       R"doc(seeds initial weights, data order, timesteps, noise and samples)doc"},
      {{"run.device"}, R"doc()doc",
       R"doc(`auto` (CUDA when present), `cpu`, `cuda`)doc"},
      {{"run.backend"}, R"doc()doc",
       R"doc(gradient all-reduce: `auto` (NCCL on CUDA, else MPI), `mpi` (CUDA tensors go through pinned host memory: clusters without NCCL, several ranks on one GPU), `nccl`)doc"},
      {{"run.threads"}, R"doc()doc",
       R"doc(intra-op threads per rank; 0 = cores on the host / ranks on the host)doc"},
      {{"run.collective_timeout_s"}, R"doc()doc",
       R"doc(during training, a rank that waits longer in a collective (all-reduce, barrier, broadcast) reports it and ends the job; 0: never. Evaluation is not timed (ranks wait there for the one with a batch more to sample, and for rank 0's metrics))doc"},
      {{"data.dataset"}, R"doc()doc",
       R"doc(`mnist` or `fashion_mnist` (same IDX format, 1 x 28 x 28): picks the data folder and the evaluation classifier; `launch/setup.sh CONFIG` fetches it (Fashion-MNIST: Debian's `dataset-fashion-mnist`))doc"},
      {{"data.dir"}, R"doc((the data set's))doc",
       R"doc(folder with the four IDX files, plain or gzipped (`*-ubyte.gz`); empty: `data/mnist`, or `/usr/share/datasets/fashion-mnist`)doc"},
      {{"model.base_channels"}, R"doc()doc",
       R"doc(channels of the first U-Net level)doc"},
      {{"model.channel_mult"}, R"doc()doc",
       R"doc(channel multiplier per level (28 -> 14 -> 7))doc"},
      {{"model.num_res_blocks"}, R"doc()doc",
       R"doc(residual blocks per level (the up path has one more))doc"},
      {{"model.attention_resolutions"}, R"doc()doc",
       R"doc(resolutions with self-attention after each block)doc"},
      {{"model.mid_attention"}, R"doc()doc",
       R"doc(self-attention between the two middle blocks)doc"},
      {{"model.groups"}, R"doc()doc",
       R"doc(GroupNorm groups; must divide every level's channels)doc"},
      {{"model.time_embed_mult"}, R"doc()doc",
       R"doc(time-embedding width = base_channels x this)doc"},
      {{"model.dropout"}, R"doc()doc",
       R"doc(dropout inside residual blocks; each row's masks follow from (seed, step, row), so they do not depend on the ranks, the split or a resume)doc"},
      {{"model.num_classes"}, R"doc()doc",
       R"doc(0: unconditional. 10: class-conditional on the data set's 10 classes, a learned class embedding (with one more entry, "no class") added to the time embedding. A checkpoint of the other kind is refused with the key to set)doc"},
      {{"autoencoder.base_channels", "autoencoder.channel_mult", "autoencoder.num_res_blocks", "autoencoder.groups"}, R"doc(32, `[1, 2, 2]`, 1, 8)doc",
       R"doc(the latent-diffusion autoencoder (`ddpm_dist autoencoder`, docs/journal/latent.md): its encoder's levels (each after the first halves the size: 28 -> 14 -> 7), residual blocks per level, GroupNorm groups; the decoder mirrors it)doc"},
      {{"autoencoder.latent_channels"}, R"doc()doc",
       R"doc(channels of the latent (4 x 7 x 7 = 196 numbers per image with three levels); configs/mnist_latent.yaml uses 1, which diffuses far better (docs/journal/quality.md))doc"},
      {{"autoencoder.kl_weight"}, R"doc()doc",
       R"doc(weight of the KL term against the reconstruction's squared error, both summed over one image (Rombach et al.'s convention, so their 1e-6 means the same); the loss is then divided by the pixel count)doc"},
      {{"autoencoder.steps", "autoencoder.batch_size", "autoencoder.lr"}, R"doc(2000, 64, 1e-3)doc",
       R"doc(the autoencoder's training; every other `train.*` key (warm-up, schedule, clipping, EMA, precision, logging, checkpoints) is shared with the diffusion stage)doc"},
      {{"diffusion.space"}, R"doc()doc",
       R"doc(`pixel`: the diffusion model works on the images. `latent`: on the latents of the run's autoencoder (`autoencoder.*`; `ddpm_dist CONFIG` trains it first into `<run>/autoencoder`, whose `latents.h5` caches every training image's posterior), standardised by their mean and standard deviation over the training set; the U-Net's levels must divide the latent size (one level at 7 x 7), `sample.clip_x0` must be false, and samples are decoded to images. A cache or a run of another autoencoder is refused (docs/journal/latent.md))doc"},
      {{"diffusion.timesteps"}, R"doc()doc",
       R"doc(T)doc"},
      {{"diffusion.schedule"}, R"doc()doc",
       R"doc(`linear` (beta_start..beta_end) or `cosine` (Nichol & Dhariwal))doc"},
      {{"diffusion.beta_start", "diffusion.beta_end"}, R"doc(1e-4, 0.02)doc",
       R"doc(linear schedule ends)doc"},
      {{"diffusion.cosine_s"}, R"doc()doc",
       R"doc(cosine schedule offset)doc"},
      {{"diffusion.prediction"}, R"doc()doc",
       R"doc(what the U-Net predicts: `eps` (DDPM), `v` (sqrt(abar) eps - sqrt(1-abar) x0) or `x0`; every sampler converts it to a noise estimate (kind `ddpm` only))doc"},
      {{"diffusion.kind"}, R"doc()doc",
       R"doc(`ddpm`: discrete timesteps, the objective above. `edm`: Karras et al.'s (2022) preconditioned denoiser D(x, sigma) = c_skip x + c_out F(c_in x, c_noise) at continuous noise levels, trained with ln sigma ~ N(`p_mean`, `p_std`^2) and EDM's loss weight (`train.loss_weighting` must be `none`); every sampler runs it on the noise levels sigma_t = sqrt((1 - abar_t) / abar_t) of the schedule above)doc"},
      {{"diffusion.sigma_data"}, R"doc()doc",
       R"doc(`edm`: the data's standard deviation in the preconditioning)doc"},
      {{"diffusion.p_mean", "diffusion.p_std"}, R"doc(-1.2, 1.2)doc",
       R"doc(`edm`: the log-normal training distribution of sigma)doc"},
      {{"train.steps"}, R"doc()doc",
       R"doc(optimizer steps)doc"},
      {{"train.batch_size"}, R"doc()doc",
       R"doc(global batch over all ranks)doc"},
      {{"train.micro_batch"}, R"doc()doc",
       R"doc(rows per forward pass on a rank: the rank's share runs in passes of this many rows whose gradients add up to the same update as one pass (gradient accumulation, so a global batch fits any device); 0: the whole share at once. Not with `train.cuda_graphs`)doc"},
      {{"train.lr"}, R"doc()doc",
       R"doc(Adam learning rate after warm-up)doc"},
      {{"train.warmup_steps"}, R"doc()doc",
       R"doc(linear learning-rate warm-up)doc"},
      {{"train.lr_schedule"}, R"doc()doc",
       R"doc(after warm-up: `constant`, or `cosine` from `train.lr` down to `train.lr_min` at the last step)doc"},
      {{"train.lr_min"}, R"doc()doc",
       R"doc(the cosine schedule's floor)doc"},
      {{"train.loss_weighting"}, R"doc()doc",
       R"doc(`none` (mean squared error of the prediction) or `min_snr` (Min-SNR-gamma, Hang et al. 2023, in the prediction's form: every prediction weights the x0 error by min(SNR_t, gamma)))doc"},
      {{"train.min_snr_gamma"}, R"doc()doc",
       R"doc(gamma of `min_snr`)doc"},
      {{"train.weight_decay"}, R"doc()doc",
       R"doc(0: Adam; > 0: AdamW (decoupled weight decay, Loshchilov & Hutter 2019): each step first scales the weights by 1 - lr x weight_decay)doc"},
      {{"train.grad_clip"}, R"doc()doc",
       R"doc(max global gradient L2 norm; 0 = off)doc"},
      {{"train.ema_decay"}, R"doc()doc",
       R"doc(EMA decay, warmed up as min(decay, (1+t)/(10+t)))doc"},
      {{"train.ema_share"}, R"doc()doc",
       R"doc(> 0: instead of `ema_decay`, an EMA whose half-life is this share of the steps done so far (max(1, share x t) steps; EDM's half-life as a share of training), so it spans the same part of any run length)doc"},
      {{"train.phema_sigma_rels"}, R"doc()doc",
       R"doc(post-hoc EMA (Karras et al. 2024): the lengths (sigma_rel, each in (0, 0.2887]: the average's spread as a share of the steps done) of power-function EMAs tracked beside the EMA, e.g. `[0.05, 0.10]`; their snapshots let an average of any other length be reconstructed after training. Empty: none)doc"},
      {{"train.phema_snapshot_every"}, R"doc()doc",
       R"doc(steps between snapshots of the power-function EMAs (`<run>/phema/snapshot_<step>.h5`, checksummed, never pruned); 0: at each checkpoint)doc"},
      {{"train.log_every"}, R"doc()doc",
       R"doc(progress line (loss, lr, grad norm, img/s, ETA) every N steps)doc"},
      {{"train.checkpoint_every"}, R"doc()doc",
       R"doc(checkpoint every N steps and at the end)doc"},
      {{"train.keep_checkpoints"}, R"doc()doc",
       R"doc(how many of the newest checkpoints to keep)doc"},
      {{"train.bucket_mb"}, R"doc()doc",
       R"doc(gradient all-reduce bucket size in MB (the first bucket is a quarter))doc"},
      {{"train.overlap"}, R"doc()doc",
       R"doc(all-reduce buckets while backward runs; false: after backward (also with CUDA graphs, and with `run.backend: mpi` on CUDA, whose hooks would call MPI from autograd's device thread))doc"},
      {{"train.balance"}, R"doc()doc",
       R"doc(CPU ranks: split each global batch among the ranks in proportion to their measured speed (busy time per row, smoothed), so that a rank on a core the host slows down does not make the others wait; gradients are weighted by rows, so the update is still the global batch mean. The split shows in the progress line (`rows 70/58`). Off, or on CUDA: equal slices)doc"},
      {{"train.on_write_error"}, R"doc()doc",
       R"doc(a checkpoint or run.h5 write that fails: `stop` the run (the previous files are intact), or `continue` (a missed checkpoint is skipped, missed metrics are written with the next ones))doc"},
      {{"train.max_bad_steps"}, R"doc()doc",
       R"doc(steps in a row with a non-finite loss or gradient norm that are skipped (on every rank alike, decided on the device) before training stops with the checkpoint of the step that passed the limit (the last good weights, which the skipped steps left unchanged), written at the next step that logs or checkpoints; 0: stop at the first)doc"},
      {{"train.cuda_graphs"}, R"doc()doc",
       R"doc(on CUDA: capture forward and backward of a training step once and replay it each step (inputs copied into fixed buffers; gradient averaging, clipping and Adam run outside the graph); ignored with a warning on CPU)doc"},
      {{"train.precision"}, R"doc()doc",
       R"doc(`bf16`: autocast forward passes to bf16 (norms, softmax, loss, weights, EMA, Adam state stay fp32); on a CPU without bf16 arithmetic it warns and runs fp32. `auto`: bf16 on a CPU with AVX-512 BF16 or AMX, fp32 on other CPUs and on CUDA, silently (docs/journal/performance.md has the measurements behind it))doc"},
      {{"train.label_dropout"}, R"doc()doc",
       R"doc(conditional models: the share of examples trained as "no class" (the unconditional half that guidance needs), drawn from (seed, step, row) like the noise, so independent of the ranks and the split)doc"},
      {{"sample.num_samples"}, R"doc()doc",
       R"doc(images to generate)doc"},
      {{"sample.sampler"}, R"doc()doc",
       R"doc(`ddpm` (ancestral, all T steps), `ddim`, `heun` (EDM's second-order sampler) or `dpmpp_2m` (DPM-Solver++ 2M); deterministic, on EDM's rho = 7 noise-level schedule: an EDM model at those levels exactly, a DDPM-trained one at the nearest trained timesteps (repeats dropped, so possibly fewer evaluations than asked, and the count reported is the count made))doc"},
      {{"sample.steps"}, R"doc()doc",
       R"doc(network evaluations per image: DDIM and DPM-Solver++ steps; Heun takes (steps + 1) / 2 noise levels and evaluates twice on all but the last (ddpm: must be T))doc"},
      {{"sample.eta"}, R"doc()doc",
       R"doc(DDIM stochasticity: 0 deterministic, 1 = DDPM posterior variance)doc"},
      {{"sample.variance"}, R"doc()doc",
       R"doc(DDPM sigma^2: `posterior` (beta~_t) or `beta`)doc"},
      {{"sample.batch_size"}, R"doc()doc",
       R"doc(images per forward pass)doc"},
      {{"sample.clip_x0"}, R"doc()doc",
       R"doc(clip the predicted x0 to [-1, 1] at each step)doc"},
      {{"sample.precision"}, R"doc()doc",
       R"doc(`bf16`: sampling forward passes in bf16 autocast (the sampler's arithmetic stays fp32); `auto` as for `train.precision`)doc"},
      {{"sample.cuda_graphs"}, R"doc()doc",
       R"doc(on CUDA: capture the network's forward pass once per batch size and replay it at every sampling step; ignored with a warning on CPU)doc"},
      {{"sample.labels"}, R"doc()doc",
       R"doc(conditional models: the class of each image: `balanced` (image i is of class i mod 10: equal counts, the same order on any number of ranks), `random` (from (seed, i)), `none` (the model's unconditional mode), or a list cycled over the images, e.g. `[7]`. Stored beside the images (`/samples/labels`); samples.png then has one class per row)doc"},
      {{"sample.guidance"}, R"doc()doc",
       R"doc(guidance weight w: (1 + w) D(x, class) - w D_guide. Without a guide model, classifier-free guidance of a class-conditional model trained with `train.label_dropout` > 0: D_guide is its own "no class" output, both halves in one doubled batch. With autoguidance (`sample.guide_step` or `sample.guide_run`), D_guide is the guide model's (with the same classes), for conditional and unconditional models. Either way twice the network work per step (the guide's on its own size); 0: the model alone)doc"},
      {{"sample.guide_run"}, R"doc((none))doc",
       R"doc(autoguidance (Karras et al. 2024, "Guiding a diffusion model with a bad version of itself"): the folder of another run whose weights guide this run's (e.g. a smaller U-Net trained briefly); it must share the data set, image shape, classes, noise schedule and (latent space) autoencoder; its prediction and architecture may differ. Empty: the guide is this run's own weights at `sample.guide_step`)doc"},
      {{"sample.guide_step"}, R"doc()doc",
       R"doc(autoguidance: the guide's training step: the guide run's checkpoint of that step, or with `sample.guide_ema_sigma_rel` > 0 its post-hoc EMA at the newest snapshot up to it. 0: no autoguidance (this run), or the guide run's newest checkpoint)doc"},
      {{"sample.guide_ema_sigma_rel"}, R"doc()doc",
       R"doc(autoguidance: > 0: the guide's weights are the post-hoc EMA of this length reconstructed from the guide run's snapshots (`train.phema_sigma_rels`; any step they reach, not only kept checkpoints); 0: the checkpoint's EMA)doc"},
      {{"eval.weights"}, R"doc()doc",
       R"doc(weights to evaluate: `ema`, `raw` or `both`; `ddpm_dist sample` draws from `ema` or `raw`)doc"},
      {{"eval.ema_sigma_rel"}, R"doc()doc",
       R"doc(> 0: evaluate (and sample) with post-hoc EMA: the EMA weights become the average of this length (sigma_rel, in (0, 0.2886]), reconstructed by least squares from the run's snapshots of `train.phema_sigma_rels` up to the checkpoint's step; 0: the checkpoint's EMA)doc"},
      {{"eval.classifier"}, R"doc((per data set))doc",
       R"doc(the evaluation classifier; trained there when missing; empty: `results/classifier_<data.dataset>.h5`. A classifier of another data set is refused)doc"},
      {{"eval.classifier_epochs"}, R"doc(0 (per data set))doc",
       R"doc(its training epochs; 0: the data set's (MNIST 3, Fashion-MNIST 15; docs/datasets.md), through the same trainer as the U-Net (`config::classifier_stage`: global batch 128, Adam at 1e-3 with a cosine decay, fp32; every draw keyed to the global batch, so 1 and 2 ranks train the same classifier); its checkpoints and history in `<classifier without .h5>_training/`)doc"},
      {{"eval.classifier_augment"}, R"doc(auto (per data set))doc",
       R"doc(label-preserving changes of its training images, drawn per image from the classifier's seed, step and row: `shift` (up to 2 pixels each way, the border black), `shift_flip` (also mirrored left-right half of the time: for garments, not digits), `none`; `auto`: the data set's (MNIST none, Fashion-MNIST shift_flip))doc"},
      {{"eval.classifier_seed"}, R"doc()doc",
       R"doc(its initialisation, data order and the choice of floor images)doc"},
      {{"eval.batch_size"}, R"doc()doc",
       R"doc(images per classifier pass over the reference sets)doc"},
      {{"eval.trajectory_images"}, R"doc()doc",
       R"doc(rows of forward.png and reverse.png)doc"},
      {{"eval.every"}, R"doc()doc",
       R"doc(during training, evaluate the EMA weights every N steps (0: never): `eval.during_samples` images with the configured sampler across the ranks, KID, FID with their errors, FID at infinite N, the floor at that N, precision, recall, memorisation, confidence, classes, into run.h5's `/eval_history` with a grid of the first 16; its time is printed and left out of img/s, the ETA and `/train/wall_s`)doc"},
      {{"eval.during_samples"}, R"doc()doc",
       R"doc(images per evaluation during training)doc"},
      {{"eval.guidance"}, R"doc()doc",
       R"doc(the guidance weights the final evaluation measures (conditional or autoguided models), each with FID, floor, confidence and, for conditional models, the conditional accuracy (the share of samples the classifier assigns to the class asked for) and its value per class, in `/eval/<weights>/guidance_<w>`, a report row and `samples_guidance_<w>.png` each; empty: `sample.guidance` alone)doc"},
      {{"eval.seeds"}, R"doc()doc",
       R"doc(the sample seeds of the final evaluation: each samples `sample.num_samples` images anew from the same weights with its own noise, every measure is reported as the mean over the seeds with the standard error of that mean, and the seeds' spread is printed; empty: `run.seed` alone)doc"},
      {{"sweep.ema_sigma_rels"}, R"doc()doc",
       R"doc(`ddpm_dist sweep`: the model's EMA lengths it tries, post-hoc (sigma_rel in (0, 0.2886], from the run's snapshots of `train.phema_sigma_rels`); 0: the checkpoint's EMA)doc"},
      {{"sweep.guide_steps"}, R"doc()doc",
       R"doc(`ddpm_dist sweep`: the guide's steps it tries, each as `sample.guide_step` (0 with no `sample.guide_run`: no guide model, so classifier-free guidance for a conditional model and no guidance for an unconditional one))doc"},
      {{"sweep.guide_ema_sigma_rels"}, R"doc()doc",
       R"doc(`ddpm_dist sweep`: the guide's EMA lengths it tries, each as `sample.guide_ema_sigma_rel`)doc"},
      {{"sweep.guidances"}, R"doc()doc",
       R"doc(`ddpm_dist sweep`: the guidance weights it tries, each as `sample.guidance` (0: the model alone, measured once per EMA length))doc"},
      {{"sweep.num_samples"}, R"doc()doc",
       R"doc(`ddpm_dist sweep`: images per cell and sample seed, sampled across the ranks with the `sample` section's sampler)doc"},
      {{"sweep.seeds"}, R"doc()doc",
       R"doc(`ddpm_dist sweep`: the sample seeds of every cell (each cell's figures are the mean over them with its standard error); empty: `run.seed`)doc"},
      {{"sweep.min_cond_accuracy"}, R"doc()doc",
       R"doc(`ddpm_dist sweep`, conditional models: the best cell is the lowest `metric` among the cells whose samples are classified as the class asked for at least this often (e.g. 0.99); 0: among all. When no cell reaches it, the table says so and names the best of all)doc"},
      {{"sweep.metric"}, R"doc()doc",
       R"doc(`ddpm_dist sweep`: `kid` or `fid`, the figure that names the best cell (the lowest), with its standard error and every cell within two standard errors of the difference from it)doc"},
  };
  return docs;
}

std::string reference_table() {
  Config defaults;
  DefaultText d;
  visit(defaults, d);
  std::string out = "| key | default | meaning |\n|---|---|---|\n";
  std::set<std::string> documented;
  for (const auto& doc : key_docs()) {
    std::string keys, values;
    std::string section;
    for (const auto& k : doc.keys) {
      if (!d.text.count(k)) throw Error("the configuration reference documents '" + k + "', which is not a key");
      if (!documented.insert(k).second) throw Error("the configuration reference documents '" + k + "' twice");
      const auto s = k.substr(0, k.find('.'));
      keys += (keys.empty() ? "" : ", ") + (s == section ? "`" + k.substr(s.size()) + "`" : "`" + k + "`");
      section = s;
      values += (values.empty() ? "" : ", ") + d.text[k];
    }
    out += "| " + keys + " | " + (doc.shown_default.empty() ? values : doc.shown_default) + " | " + doc.meaning + " |\n";
  }
  for (const auto& [k, text] : d.text)
    if (!documented.count(k)) throw Error("the configuration reference does not document the key '" + k + "'");
  return out;
}

}  // namespace ddpm::config
