// The evaluation classifier the tests share (results/classifier_mnist.h5, trained by the CTest
// fixture `fixture.classifier` with `ddpm_dist classifier` where it is missing, as in a clean clone),
// read from a copy in a temporary file, and what FID measures with it.
#include <H5Cpp.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <unistd.h>

#include <filesystem>

#include "config/config.hpp"
#include "dist/communicator.hpp"
#include "eval/classifier_training.hpp"
#include "eval/metrics.hpp"
#include "io/h5.hpp"
#include "io/latent_cache.hpp"
#include "util/error.hpp"

using namespace ddpm;

namespace {
struct TempClassifier {
  std::string stem = (std::filesystem::temp_directory_path() / ("ddpm_classifier_" + std::to_string(::getpid()))).string();
  std::string path = stem + ".h5";
  TempClassifier() { clean(); }
  ~TempClassifier() { clean(); }
  void clean() const {
    std::filesystem::remove(path);
    std::filesystem::remove(stem + "_features.h5");
    std::filesystem::remove_all(stem + "_training");
  }
};
config::Config repo_config(const std::string& classifier) {
  const std::string root = DDPM_SOURCE_DIR;
  return config::parse("data: {dir: " + root + "/data/mnist}\neval: {classifier: " + classifier + "}\n",
                       "classifier-test");
}
}  // namespace

TEST(Classifier, ReachesNinetyNinePercentOnTheTestSetAndFidSeparatesNoiseFromDigits) {
  const std::string shared = std::string(DDPM_SOURCE_DIR) + "/results/classifier_mnist.h5";
  if (!std::filesystem::exists(shared))
    GTEST_SKIP() << shared << " is missing: ctest trains it first (fixture.classifier), or run ddpm_dist classifier";
  TempClassifier file;
  std::filesystem::copy_file(shared, file.path);
  // Its feature cache, which `ddpm_dist classifier` makes with it (computed below where missing).
  const std::string shared_features = std::string(DDPM_SOURCE_DIR) + "/results/classifier_mnist_features.h5";
  if (std::filesystem::exists(shared_features)) std::filesystem::copy_file(shared_features, file.stem + "_features.h5");
  const auto cfg = repo_config(file.path);
  dist::SelfCommunicator self;
  model::Classifier net;
  const auto train = data::load_dataset(cfg.data.dir, data::Split::Train);
  const auto test = data::load_dataset(cfg.data.dir, data::Split::Test);
  const auto info = eval::ensure_classifier(self, cfg, net, train, test, torch::kCPU,
                                            [&](model::Classifier&, const data::Dataset&) {
                                              ADD_FAILURE() << "the shared classifier was trained again";
                                            });
  EXPECT_EQ(info.fingerprint, io::weights_fingerprint(*net));
  {
    H5::H5File f(file.path, H5F_ACC_RDONLY);
    EXPECT_EQ(io::read_attr_string(f.openGroup("/"), "fingerprint"), info.fingerprint);
  }
  // Measured again from the stored weights, not taken from the stored attribute.
  const double acc = eval::accuracy(self, net, test, 1000, torch::kCPU);
  std::cout << "classifier test accuracy " << 100 * acc << "% (stored " << 100 * info.test_accuracy << "%)\n";
  EXPECT_GE(acc, 0.99);
  EXPECT_NEAR(acc, info.test_accuracy, 1e-12);

  const std::int64_t n = 1000;
  const auto features = eval::real_features(self, net, cfg, train, test, torch::kCPU);
  EXPECT_EQ(features.classifier, info.fingerprint);
  EXPECT_EQ(features.train.size(0), train.size());
  // The second time the features come from the cache, as they were computed.
  const auto cached = eval::real_features(self, net, cfg, train, test, torch::kCPU);
  EXPECT_TRUE(torch::equal(cached.test, features.test));
  EXPECT_EQ(cached.memorisation_threshold, features.memorisation_threshold);
  const auto ref = eval::reference_stats(self, features, cfg, n);
  // The cached features are those of these weights: the first 1000 test images classified again
  // here (in the same batches of 500; another thread count may round differently, ~1e-6).
  const auto again =
      eval::evaluate(self, net, data::to_model_range(test.images.slice(0, 0, 1000)), ref, 500, torch::kCPU);
  const auto cached_test = features.test.slice(0, 0, 1000);
  EXPECT_LT((again.gen_features - cached_test).abs().max().item<double>(),
            1e-4 * cached_test.abs().max().item<double>());
  torch::manual_seed(0);
  const auto noise = torch::rand({n, 1, 28, 28}) * 2 - 1;
  const auto m = eval::evaluate(self, net, noise, ref, 500, torch::kCPU);
  std::cout << "FID of uniform noise " << m.figures.fid.value << ", floor (1000 real training images) " << ref.floor.fid.value
            << "; KID noise " << m.figures.kid.value << " +- " << m.figures.kid.se << ", real "
            << ref.floor.kid.value << " +- " << ref.floor.kid.se << "; precision noise "
            << m.figures.precision << ", real " << ref.floor.precision << "; recall noise " << m.figures.recall
            << ", real " << ref.floor.recall << "\n";
  EXPECT_GT(ref.floor.fid.value, 0.0);
  EXPECT_GT(m.figures.fid.value, 20 * ref.floor.fid.value);
  // Real training images: KID zero within its error, on the test images' manifold, and every one
  // of them a training image.
  EXPECT_LT(std::abs(ref.floor.kid.value), 3 * ref.floor.kid.se);
  EXPECT_GT(ref.floor.precision, 0.6);
  EXPECT_GT(ref.floor.recall, 0.6);
  EXPECT_EQ(ref.floor.memorised, 1.0);
  // Noise: far from the digits' distribution, with none of their variety. (Its precision is no
  // guide: the noise images' features gather in one small cluster, which the wide k-NN ball of a
  // single atypical digit can hold whole; recall shows what is missing.)
  EXPECT_GT(m.figures.kid.value, 10 * m.figures.kid.se);
  EXPECT_LT(m.figures.recall, 0.05);
  EXPECT_EQ(m.figures.memorised, 0.0);
  std::int64_t total = 0;
  for (auto c : m.class_histogram) total += c;
  EXPECT_EQ(total, n);
  EXPECT_EQ(m.gen_features.sizes(), (std::vector<int64_t>{n, model::ClassifierImpl::kFeatureDim}));
  // MNIST's recipe: 3 epochs without augmentation (files older than the "augment" attribute had none).
  EXPECT_EQ(info.epochs, 3);
  EXPECT_EQ(info.augment, "none");
  EXPECT_EQ(info.seed, 0);
  // The file knows its data set: another data set's run refuses it.
  model::Classifier other;
  try {
    eval::load_classifier(file.path, other, "fashion_mnist");
    FAIL() << "an MNIST classifier was accepted for fashion_mnist";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("a classifier of mnist, and this run's data.dataset is fashion_mnist"),
              std::string::npos)
        << e.what();
  }
}

// The file keeps the recipe it was trained with (what ensure_classifier compares with the run's).
TEST(Classifier, TheFileKeepsItsTrainingRecipe) {
  TempClassifier file;
  const auto cfg = config::parse("data: {dataset: fashion_mnist}\neval: {classifier_seed: 4}", "recipe-test");
  model::Classifier net;
  eval::save_classifier(file.path, net, 0.5, cfg);
  model::Classifier back;
  const auto info = eval::load_classifier(file.path, back, "fashion_mnist");
  EXPECT_EQ(info.epochs, config::dataset_profile("fashion_mnist").classifier_epochs);
  EXPECT_EQ(info.augment, "shift_flip");
  EXPECT_EQ(info.seed, 4);
  EXPECT_EQ(info.test_accuracy, 0.5);
}

TEST(Classifier, AFileOfAnotherArchitectureIsRefused) {
  const std::string path = "/tmp/ddpm_not_a_classifier.h5";
  {
    H5::H5File f(path, H5F_ACC_TRUNC);
    f.createGroup("classifier");
  }
  model::Classifier net;
  try {
    eval::load_classifier(path, net, "mnist");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("a file of another architecture"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("missing classifier/conv1.weight"), std::string::npos) << e.what();
  }
  std::remove(path.c_str());
}
