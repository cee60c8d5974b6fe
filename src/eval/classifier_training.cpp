#include "eval/classifier_training.hpp"

#include <spdlog/spdlog.h>

#include <filesystem>

#include "io/h5.hpp"
#include "io/latent_cache.hpp"
#include "io/named_tensors.hpp"
#include "util/error.hpp"
#include "util/share.hpp"

namespace ddpm::eval {
namespace {
constexpr const char* kArchitecture = "conv5x5(32)-pool-conv5x5(64)-pool-fc(128)-fc(10)";
}  // namespace

double accuracy(dist::Communicator& comm, model::Classifier& net, const data::Dataset& set, std::int64_t batch,
                const torch::Device& device) {
  c10::InferenceMode guard;
  net->eval();
  const auto [begin, end] = rank_share(set.size(), comm.rank(), comm.size());
  double correct = 0;
  for (std::int64_t i = begin; i < end; i += batch) {
    const auto n = std::min(batch, end - i);
    auto x = data::to_model_range(set.images.slice(0, i, i + n)).to(device);
    auto pred = net->forward(x).argmax(1).cpu();
    correct += pred.eq(set.labels.slice(0, i, i + n).to(torch::kLong)).sum().item<double>();
  }
  auto total = torch::tensor({correct}, torch::kFloat64);
  comm.allreduce_sum(total);
  return total.item<double>() / static_cast<double>(set.size());
}

void save_classifier(const std::string& path, model::Classifier& net, double test_accuracy, const config::Config& cfg) {
  io::write_atomically(path, [&](H5::H5File& file) {
    auto root = file.openGroup("/");
    io::write_named(root, "classifier", io::named_tensors(*net), "classifier weights (data set: the dataset attribute), by module name");
    io::write_attr(root, "architecture", std::string(kArchitecture));
    io::write_attr(root, "feature_dim", std::int64_t{model::ClassifierImpl::kFeatureDim});
    io::write_attr(root, "test_accuracy", test_accuracy);
    io::write_attr(root, "seed", static_cast<std::int64_t>(cfg.eval.classifier_seed));
    io::write_attr(root, "dataset", cfg.data.dataset);
    io::write_attr(root, "epochs", std::int64_t{cfg.classifier_epochs()});
    io::write_attr(root, "augment", cfg.classifier_augment());
    io::write_attr(root, "fingerprint", io::weights_fingerprint(*net));
    io::write_attr(root, "description", std::string("the feature extractor of ddpm_dist's FID: features are the "
                                                    "128-d ReLU layer before the last linear layer"));
  });
}

ClassifierInfo load_classifier(const std::string& path, model::Classifier& net, const std::string& dataset) {
  auto file = io::open_read(path);
  const std::string what_to_do = "; delete it to train a new one (`ddpm_dist inspect --verify " + path +
                                 "` lists every damaged dataset)";
  return io::read_verified(path, what_to_do, [&] {
    if (!file.nameExists("classifier"))
      throw Error(path + ": not a ddpm_dist classifier file (no /classifier group); delete it to train a new one");
    // Files written before the attribute existed were all trained on MNIST.
    const auto root = file.openGroup("/");
    const auto trained_on = io::has_attr(root, "dataset") ? io::read_attr_string(root, "dataset") : "mnist";
    if (trained_on != dataset)
      throw Error(path + ": a classifier of " + trained_on + ", and this run's data.dataset is " + dataset +
                  ": its features would not measure these images; set eval.classifier to another file (or leave it "
                  "empty for results/classifier_" + dataset + ".h5)");
    const auto tensors = io::named_tensors(*net);
    io::check_named(path, file.openGroup("classifier"), "classifier", tensors);
    const auto values = io::read_named(file.openGroup("classifier"), tensors);
    ClassifierInfo info{path, io::read_attr_double(root, "test_accuracy"), "", io::has_checksums(file)};
    if (io::has_attr(root, "epochs")) info.epochs = io::read_attr_int(root, "epochs");
    if (io::has_attr(root, "seed")) info.seed = io::read_attr_int(root, "seed");
    if (io::has_attr(root, "augment")) info.augment = io::read_attr_string(root, "augment");
    io::assign_named(tensors, values);
    info.fingerprint = io::weights_fingerprint(*net);
    return info;
  });
}

ClassifierInfo ensure_classifier(dist::Communicator& comm, const config::Config& cfg, model::Classifier& net,
                                 const data::Dataset& train_set, const data::Dataset& test_set,
                                 const torch::Device& device, const TrainClassifier& train) {
  const auto path = cfg.classifier_path();
  if (!std::filesystem::exists(path)) {
    if (comm.rank() == 0)
      spdlog::info("{}: no evaluation classifier yet; training one ({} epochs, augmentation {}, seed {})", path,
                   cfg.classifier_epochs(), cfg.classifier_augment(), cfg.eval.classifier_seed);
    model::Classifier fresh{nullptr};
    train(fresh, train_set);
    const double acc = accuracy(comm, fresh, test_set, 1000, device);
    if (comm.rank() == 0) {
      save_classifier(path, fresh, acc, cfg);
      spdlog::info("classifier test accuracy {:.2f}%, weights {}; written to {}", 100 * acc,
                   io::weights_fingerprint(*fresh), path);
    }
    comm.barrier();
  }
  const auto info = load_classifier(path, net, cfg.data.dataset);
  if (comm.rank() == 0 && !info.checksummed)
    spdlog::warn("{}; delete it to train one that has checksums", io::no_checksums_warning(path));
  const auto epochs = cfg.classifier_epochs();
  const auto augment = cfg.classifier_augment();
  const auto seed = static_cast<std::int64_t>(cfg.eval.classifier_seed);
  if (comm.rank() == 0 && (info.epochs != epochs || info.augment != augment || info.seed != seed))
    spdlog::warn("{}: trained with {} epochs, augmentation {}, seed {} (test accuracy {:.2f}%), and this configuration "
                 "asks for {}, {}, {}: this run is measured by the classifier in the file; delete it (and {}_features.h5) "
                 "to train the one asked for", path, info.epochs, info.augment, info.seed, 100 * info.test_accuracy,
                 epochs, augment, seed, cfg.classifier_stem());
  net->to(device);
  net->eval();
  return info;
}

}  // namespace ddpm::eval
