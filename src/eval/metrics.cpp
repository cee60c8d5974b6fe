#include "eval/metrics.hpp"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <limits>

#include "eval/distributed_sampling.hpp"
#include "eval/fid.hpp"
#include "io/h5.hpp"
#include "io/latent_cache.hpp"
#include "util/rng.hpp"
#include "util/share.hpp"

namespace ddpm::eval {
namespace {

// Features and softmax probabilities of float images, in batches.
std::pair<torch::Tensor, torch::Tensor> classify(model::Classifier& net, const torch::Tensor& images, std::int64_t batch,
                                                 const torch::Device& device) {
  c10::InferenceMode guard;
  std::vector<torch::Tensor> feats, probs;
  for (std::int64_t i = 0; i < images.size(0); i += batch) {
    auto x = images.slice(0, i, std::min(images.size(0), i + batch)).to(device, torch::kFloat32);
    auto f = net->features(x);
    feats.push_back(f.cpu());
    probs.push_back(torch::softmax(net->head(f), 1).cpu());
  }
  if (feats.empty())
    return {torch::empty({0, model::ClassifierImpl::kFeatureDim}), torch::empty({0, 10})};
  return {torch::cat(feats), torch::cat(probs)};
}

// The features of images_u8, each rank classifying its run of whole batches (batch_share), so
// that every image meets the same batch whatever the number of ranks; the local share is
// passed through `transform` first, when given.
torch::Tensor local_features(dist::Communicator& comm, model::Classifier& net, const torch::Tensor& images_u8,
                             std::int64_t batch, const torch::Device& device, const ImageTransform& transform = nullptr) {
  const auto [begin, count] = batch_share(images_u8.size(0), batch, comm.rank(), comm.size());
  auto x = data::to_model_range(images_u8.slice(0, begin, begin + count));
  if (transform && count > 0) x = transform(x);
  return classify(net, x, batch, device).first;
}

// The floor's training images: as many as there are samples, chosen by a fixed seed.
torch::Tensor floor_indices(const config::Config& cfg, std::int64_t train_size, std::int64_t n_samples) {
  auto gen = Stream(cfg.eval.classifier_seed, Purpose::FloorImages).generator();
  return torch::randperm(train_size, gen, torch::kLong).slice(0, 0, std::min(n_samples, train_size));
}

constexpr int kFigures = 9;
torch::Tensor pack(const FeatureFigures& f) {
  return torch::tensor({f.fid.value, f.fid.se, f.kid.value, f.kid.se, f.fid_inf.value, f.fid_inf.se, f.precision,
                        f.recall, f.memorised},
                       torch::kFloat64);
}
FeatureFigures unpack(const torch::Tensor& t) {
  const auto* v = t.data_ptr<double>();
  return {{v[0], v[1]}, {v[2], v[3]}, {v[4], v[5]}, v[6], v[7], v[8]};
}
// Rank 0's figures on every rank.
FeatureFigures broadcast_figures(dist::Communicator& comm, const FeatureFigures& f) {
  auto t = comm.rank() == 0 ? pack(f) : torch::zeros({kFigures}, torch::kFloat64);
  comm.broadcast(t, 0);
  return unpack(t);
}

// Seeds of the measures' own random choices (bootstrap, subsets): fixed, so a measure is a
// function of the features alone.
std::uint64_t measure_seed(std::uint64_t index) { return Stream(0, Purpose::Measures).key({index}); }

}  // namespace

io::FeatureCache compute_real_features(dist::Communicator& comm, model::Classifier& net, const config::Config& cfg,
                                       const data::Dataset& train, const data::Dataset& test,
                                       const torch::Device& device) {
  io::FeatureCache c;
  c.classifier = io::weights_fingerprint(*net);
  c.dataset = cfg.data.dataset;
  c.train = comm.gatherv(local_features(comm, net, train.images, cfg.eval.batch_size, device).contiguous(), 0);
  c.test = comm.gatherv(local_features(comm, net, test.images, cfg.eval.batch_size, device).contiguous(), 0);
  if (comm.rank() == 0) c.memorisation_threshold = memorisation_threshold(c.test, c.train);
  return c;
}

io::FeatureCache real_features(dist::Communicator& comm, model::Classifier& net, const config::Config& cfg,
                               const data::Dataset& train, const data::Dataset& test, const torch::Device& device) {
  const auto path = io::feature_cache_path(cfg);
  const auto fingerprint = io::weights_fingerprint(*net);
  io::FeatureCache cache;
  auto current = torch::zeros({1}, torch::kFloat64);
  if (comm.rank() == 0 && std::filesystem::exists(path)) {
    try {
      cache = io::read_feature_cache(path);
      if (cache.classifier == fingerprint && cache.dataset == cfg.data.dataset &&
          cache.train.size(0) == train.size() && cache.test.size(0) == test.size())
        current[0] = 1.0;
    } catch (const io::DamagedFile& e) {
      spdlog::warn("{}; it is computed again", e.what());
    }
  }
  comm.broadcast(current, 0);
  if (current[0].item<double>() > 0) return cache;
  if (comm.rank() == 0)
    spdlog::info("{}: computing the classifier's features of the {} training and {} test images (once for this "
                 "classifier)",
                 path, train.size(), test.size());
  cache = compute_real_features(comm, net, cfg, train, test, device);
  if (comm.rank() == 0) io::write_feature_cache(path, cache);
  return cache;
}

Reference reference_stats(dist::Communicator& comm, const io::FeatureCache& features, const config::Config& cfg,
                          std::int64_t n_samples) {
  Reference r;
  const auto dim = std::int64_t{model::ClassifierImpl::kFeatureDim};
  r.mu = torch::zeros({dim}, torch::kFloat64);
  r.sigma = torch::zeros({dim, dim}, torch::kFloat64);
  auto count = torch::zeros({1}, torch::kFloat64);
  if (comm.rank() == 0) {
    const auto test = features.test.to(torch::kFloat64);
    FeatureStats stats(dim);
    stats.add(test);
    r.mu = stats.mean();
    r.sigma = stats.covariance();
    count[0] = double(test.size(0));
    r.train = features.train;
    r.memorisation_threshold = features.memorisation_threshold;
    r.classifier = features.classifier;
    const auto real_count = std::min(test.size(0), std::max<std::int64_t>(n_samples, 1000));
    auto gen = Stream(cfg.eval.classifier_seed, Purpose::RealImages).generator();
    r.real = test.index_select(0, torch::randperm(test.size(0), gen, torch::kLong).slice(0, 0, real_count));
    r.floor = measure_features(features.train.index_select(0, floor_indices(cfg, features.train.size(0), n_samples)), r);
  }
  comm.broadcast(r.mu, 0);
  comm.broadcast(r.sigma, 0);
  comm.broadcast(count, 0);
  r.count = static_cast<std::int64_t>(count[0].item<double>());
  r.floor = broadcast_figures(comm, r.floor);
  return r;
}

FeatureFigures measure_features(const torch::Tensor& gen, const Reference& ref) {
  const auto nan = std::numeric_limits<double>::quiet_NaN();
  const auto n = gen.size(0);
  FeatureFigures f{{nan, nan}, {nan, nan}, {nan, nan}, nan, nan, nan};
  // 50 resamples give the standard error to about 10% of itself.
  if (n >= 2) f.fid = fid_with_error(gen, ref.mu, ref.sigma, 50, measure_seed(1));
  if (n >= 2 * kKidBlocks) f.kid = kernel_inception_distance(gen, ref.real, kKidBlocks);
  if (n >= 8) f.fid_inf = fid_infinity(gen, ref.mu, ref.sigma, f.fid.se, measure_seed(2));
  if (n >= 4) {
    // Kynkaanniemi et al. compare sets of equal size: the k-NN radii depend on the density.
    const auto pr = precision_recall(ref.real.slice(0, 0, std::min(n, ref.real.size(0))), gen, 3);
    f.precision = pr.precision;
    f.recall = pr.recall;
  }
  if (n >= 1) f.memorised = memorised_share(gen, ref.train, ref.memorisation_threshold);
  return f;
}

double transformed_floor_fid(dist::Communicator& comm, model::Classifier& net, const config::Config& cfg,
                             const data::Dataset& train, const Reference& ref, std::int64_t n_samples,
                             const ImageTransform& transform, const torch::Device& device) {
  const auto images = train.images.index_select(0, floor_indices(cfg, train.size(), n_samples));
  FeatureStats s(model::ClassifierImpl::kFeatureDim);
  s.add(local_features(comm, net, images, cfg.eval.batch_size, device, transform));
  s.allreduce(comm);
  return frechet_distance(s.mean(), s.covariance(), ref.mu, ref.sigma);
}

Metrics evaluate(dist::Communicator& comm, model::Classifier& net, const torch::Tensor& local_images,
                 const Reference& ref, std::int64_t batch, const torch::Device& device) {
  const auto [features, probs] = classify(net, local_images, batch, device);
  const auto labels = probs.argmax(1);
  // [count, confidence sum, histogram x 10] summed across ranks in one all-reduce.
  auto sums = torch::zeros({12}, torch::kFloat64);
  sums[0] = double(features.size(0));
  sums[1] = std::get<0>(probs.max(1)).to(torch::kFloat64).sum();
  sums.slice(0, 2, 12).copy_(torch::bincount(labels, {}, 10).to(torch::kFloat64));
  comm.allreduce_sum(sums);

  Metrics m;
  m.count = std::llround(sums[0].item<double>());
  m.gen_features = comm.gatherv(features.to(torch::kFloat32).contiguous(), 0);
  m.labels_pred = comm.gatherv(labels.to(torch::kInt64).contiguous(), 0);
  m.figures = broadcast_figures(comm, comm.rank() == 0 ? measure_features(m.gen_features, ref) : FeatureFigures{});
  m.mean_confidence = sums[1].item<double>() / static_cast<double>(m.count);
  int present = 0;
  for (int k = 0; k < 10; ++k) {
    m.class_histogram.push_back(std::llround(sums[2 + k].item<double>()));
    present += m.class_histogram.back() > 0;
  }
  m.classes_present = present / 10.0;
  return m;
}

ConditionalAccuracy conditional_accuracy(const torch::Tensor& predicted, const torch::Tensor& asked, int num_classes) {
  const auto pred = predicted.cpu().to(torch::kLong), want = asked.cpu().to(torch::kLong);
  ConditionalAccuracy out;
  const auto named = want < num_classes;
  const auto hits = (pred == want).logical_and(named);
  const auto n = named.sum().item<std::int64_t>();
  out.overall = n > 0 ? double(hits.sum().item<std::int64_t>()) / double(n) : std::nan("");
  for (int c = 0; c < num_classes; ++c) {
    const auto of_c = want == c;
    const auto count = of_c.sum().item<std::int64_t>();
    out.per_class.push_back(count > 0 ? double(hits.logical_and(of_c).sum().item<std::int64_t>()) / double(count)
                                      : std::nan(""));
  }
  return out;
}

FeatureFigures mean_over_seeds(const std::vector<FeatureFigures>& per_seed) {
  const double n = double(per_seed.size());
  auto mean = [&](auto get) {
    double sum = 0;
    for (const auto& f : per_seed) sum += get(f);
    return sum / n;
  };
  auto estimate = [&](auto get) {
    double sum = 0, var = 0;
    for (const auto& f : per_seed) {
      sum += get(f).value;
      var += get(f).se * get(f).se;
    }
    return io::Estimate{sum / n, std::sqrt(var) / n};
  };
  FeatureFigures out;
  out.fid = estimate([](const FeatureFigures& f) { return f.fid; });
  out.kid = estimate([](const FeatureFigures& f) { return f.kid; });
  out.fid_inf = estimate([](const FeatureFigures& f) { return f.fid_inf; });
  out.precision = mean([](const FeatureFigures& f) { return f.precision; });
  out.recall = mean([](const FeatureFigures& f) { return f.recall; });
  out.memorised = mean([](const FeatureFigures& f) { return f.memorised; });
  return out;
}

}  // namespace ddpm::eval
