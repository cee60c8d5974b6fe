#include "eval/metrics.hpp"

#include "eval/distributed_sampling.hpp"
#include "eval/fid.hpp"
#include "util/rng.hpp"

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

// Feature statistics of `images_u8` (each rank's share passed through `transform` first, when
// given) split across ranks in whole batches, so that every image is classified in the same batch
// whatever the number of ranks.
FeatureStats stats_of(dist::Communicator& comm, model::Classifier& net, const torch::Tensor& images_u8,
                      std::int64_t batch, const torch::Device& device, const ImageTransform& transform = nullptr) {
  const auto [begin, count] = sample_range(images_u8.size(0), batch, comm.rank(), comm.size());
  FeatureStats stats(model::ClassifierImpl::kFeatureDim);
  auto x = data::to_model_range(images_u8.slice(0, begin, begin + count));
  if (transform && count > 0) x = transform(x);
  stats.add(classify(net, x, batch, device).first);
  stats.allreduce(comm);
  return stats;
}

// The floor's training images: as many as there are samples, chosen by a fixed seed.
torch::Tensor floor_images(const config::Config& cfg, const data::Dataset& train, std::int64_t n_samples) {
  auto gen = make_generator(cfg.eval.classifier_seed, Stream::EpochPermutation, 0xF100);
  auto idx = torch::randperm(train.size(), gen, torch::kLong).slice(0, 0, std::min(n_samples, train.size()));
  return train.images.index_select(0, idx);
}

}  // namespace

Reference reference_stats(dist::Communicator& comm, model::Classifier& net, const config::Config& cfg,
                          const data::Dataset& train, const data::Dataset& test, std::int64_t n_samples,
                          const torch::Device& device) {
  const auto ref = stats_of(comm, net, test.images, cfg.eval.batch_size, device);
  const auto real = stats_of(comm, net, floor_images(cfg, train, n_samples), cfg.eval.batch_size, device);
  Reference r{ref.mean(), ref.covariance(), ref.count, 0.0};
  r.fid_floor = frechet_distance(real.mean(), real.covariance(), r.mu, r.sigma);
  return r;
}

double transformed_floor_fid(dist::Communicator& comm, model::Classifier& net, const config::Config& cfg,
                             const data::Dataset& train, const Reference& ref, std::int64_t n_samples,
                             const ImageTransform& transform, const torch::Device& device) {
  const auto s = stats_of(comm, net, floor_images(cfg, train, n_samples), cfg.eval.batch_size, device, transform);
  return frechet_distance(s.mean(), s.covariance(), ref.mu, ref.sigma);
}

Metrics evaluate(dist::Communicator& comm, model::Classifier& net, const torch::Tensor& local_images,
                 const Reference& ref, std::int64_t batch, const torch::Device& device) {
  const auto [features, probs] = classify(net, local_images, batch, device);
  FeatureStats stats(model::ClassifierImpl::kFeatureDim);
  stats.add(features);
  stats.allreduce(comm);

  const auto labels = probs.argmax(1);
  // [confidence sum, histogram x 10] summed across ranks in one all-reduce.
  auto sums = torch::zeros({11}, torch::kFloat64);
  sums[0] = std::get<0>(probs.max(1)).to(torch::kFloat64).sum();
  sums.slice(0, 1, 11).copy_(torch::bincount(labels, {}, 10).to(torch::kFloat64));
  comm.allreduce_sum(sums);

  Metrics m;
  m.count = stats.count;
  m.fid = frechet_distance(stats.mean(), stats.covariance(), ref.mu, ref.sigma);
  m.mean_confidence = sums[0].item<double>() / static_cast<double>(m.count);
  int present = 0;
  for (int k = 0; k < 10; ++k) {
    m.class_histogram.push_back(std::llround(sums[1 + k].item<double>()));
    present += m.class_histogram.back() > 0;
  }
  m.classes_present = present / 10.0;
  m.gen_features = comm.gatherv(features.to(torch::kFloat32).contiguous(), 0);
  m.labels_pred = comm.gatherv(labels.to(torch::kInt64).contiguous(), 0);
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

}  // namespace ddpm::eval
