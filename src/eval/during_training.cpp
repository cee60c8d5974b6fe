#include "eval/during_training.hpp"

#include <spdlog/spdlog.h>

#include <chrono>

#include "eval/classifier_training.hpp"
#include "eval/distributed_sampling.hpp"
#include "io/png.hpp"
#include "model/precision.hpp"
#include "model/sampler.hpp"

namespace ddpm::eval {
namespace {
config::Config with_samples(config::Config cfg) {
  cfg.sample.num_samples = cfg.eval.during_samples;
  // An autoguidance guide is a trained run's weights, which training has yet to make: unguided.
  if (cfg.sample.autoguided()) cfg.sample.guidance = 0.0;
  return cfg;
}
}  // namespace

DuringTraining::DuringTraining(dist::Communicator& comm, const config::Config& cfg, const data::Dataset& train_set,
                               const torch::Device& device, model::SampleSpace space,
                               const TrainClassifier& train_classifier)
    : comm_(comm), cfg_(with_samples(cfg)), device_(device), diffusion_(cfg.diffusion), space_(std::move(space)) {
  comm_.set_phase("preparing the evaluation during training", false);
  const auto test_set = data::load_dataset(cfg_.data_dir(), data::Split::Test);
  const auto info = ensure_classifier(comm_, cfg_, classifier_, train_set, test_set, device_, train_classifier);
  ref_ = reference_stats(comm_, real_features(comm_, classifier_, cfg_, train_set, test_set, device_), cfg_,
                         cfg_.sample.num_samples);
  labels_ = model::sample_labels(cfg_.sample.labels, cfg_.model.num_classes, cfg_.run.seed, 0, cfg_.sample.num_samples);
  if (comm_.rank() == 0) {
    const auto& f = ref_.floor;
    spdlog::info("evaluation during training: every {} steps, {} samples ({} x{}), classifier {} ({:.2f}%, weights {}); "
                 "{} real training images score FID {:.3f} +- {:.3f}, KID {:.2f} +- {:.2f}, FID at N=inf {:.3f} "
                 "+- {:.3f}, precision {:.3f}, recall {:.3f}",
                 cfg_.eval.every, cfg_.sample.num_samples, cfg_.sample.sampler,
                 model::network_evaluations(cfg_.sample, cfg_.diffusion), info.path,
                 100 * info.test_accuracy, info.fingerprint, cfg_.sample.num_samples, f.fid.value, f.fid.se,
                 f.kid.value, f.kid.se, f.fid_inf.value, f.fid_inf.se, f.precision, f.recall);
  }
}

io::EvalHistoryRow DuringTraining::evaluate(model::UNet& net, std::int64_t step, double train_wall_s) {
  // Ranks wait here for the one with a batch more to sample, and for rank 0's file write.
  comm_.set_phase("the evaluation at step " + std::to_string(step), false);
  const auto start = std::chrono::steady_clock::now();
  net->eval();
  const auto local = sample_local(comm_, model::sampling_denoiser(net, diffusion_, cfg_.sample, device_), diffusion_, cfg_, device_,
                                  nullptr, &space_);
  const auto m = eval::evaluate(comm_, classifier_, local, ref_, cfg_.sample.batch_size, device_);
  // The first 16 images (they lie on rank 0 whenever it samples at least one batch of 16).
  const auto first = comm_.gatherv(local.slice(0, 0, std::min<std::int64_t>(16, local.size(0))).cpu().contiguous(), 0);
  const auto& f = m.figures;
  io::EvalHistoryRow row{double(step), train_wall_s,   f.fid.value,     ref_.floor.fid.value, m.mean_confidence,
                         m.classes_present, 0.0,       f.fid.se,        f.kid.value,    f.kid.se,
                         f.fid_inf.value,   f.fid_inf.se, f.precision,  f.recall,       f.memorised};
  row.eval_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (comm_.rank() == 0) {
    // At 28 pixels a digit, like every image in run.h5 (122 x 122, as files before the grey border).
    const auto grid = io::make_grid(data::to_uint8(first.slice(0, 0, 16)), 4, /*scale=*/1, /*pad=*/2);
    io::append_eval_history(io::run_file_path(cfg_.out_dir()), row, grid, ref_.classifier);
    std::string asked;
    if (labels_.defined()) {
      asked = fmt::format(", conditional accuracy {:.2f}% (guidance {:g})",
                          100 * conditional_accuracy(m.labels_pred, labels_, cfg_.model.num_classes).overall,
                          cfg_.sample.guidance);
    }
    // KID first: unlike FID it has no bias at this N, so it compares with the final evaluation.
    spdlog::info("eval at step {}: KID {:.2f} +- {:.2f} (real images {:.2f}), FID {:.3f} +- {:.3f} (floor {:.3f} "
                 "at this N), precision {:.3f}, recall {:.3f}, confidence {:.2f}%, classes {:.0f}/10{} ({} samples, "
                 "{:.1f} s, not counted in img/s)",
                 step, row.kid, row.kid_se, ref_.floor.kid.value, row.fid, row.fid_se,
                 row.fid_floor, row.precision, row.recall, 100 * row.mean_confidence, 10 * row.classes_present, asked,
                 m.count, row.eval_s);
  }
  comm_.barrier();
  return row;
}

}  // namespace ddpm::eval
