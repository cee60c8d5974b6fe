// The evaluation classifier, trained here from scratch into a temporary file on every run (the
// repository's cached one is never read), and what FID measures with it.
#include <H5Cpp.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <unistd.h>

#include <filesystem>

#include "config/config.hpp"
#include "dist/communicator.hpp"
#include "eval/classifier_training.hpp"
#include "eval/metrics.hpp"
#include "util/error.hpp"

using namespace ddpm;

namespace {
struct TempClassifier {
  std::string path = (std::filesystem::temp_directory_path() / ("ddpm_classifier_" + std::to_string(::getpid()) + ".h5")).string();
  TempClassifier() { std::filesystem::remove(path); }
  ~TempClassifier() { std::filesystem::remove(path); }
};
config::Config repo_config(const std::string& classifier) {
  const std::string root = DDPM_SOURCE_DIR;
  return config::parse("data: {dir: " + root + "/data/mnist}\neval: {classifier: " + classifier + "}\n",
                       "classifier-test");
}
}  // namespace

TEST(Classifier, ReachesNinetyNinePercentOnTheTestSetAndFidSeparatesNoiseFromDigits) {
  TempClassifier file;
  const auto cfg = repo_config(file.path);
  dist::SelfCommunicator self;
  model::Classifier net;
  const auto train = data::load_dataset(cfg.data.dir, data::Split::Train);
  const auto test = data::load_dataset(cfg.data.dir, data::Split::Test);
  const auto info = eval::ensure_classifier(self, cfg, net, train, test, torch::kCPU);
  // Measured again from the stored weights, not taken from the stored attribute.
  const double acc = eval::accuracy(self, net, test, 1000, torch::kCPU);
  std::cout << "classifier test accuracy " << 100 * acc << "% (stored " << 100 * info.test_accuracy << "%)\n";
  EXPECT_GE(acc, 0.99);
  EXPECT_NEAR(acc, info.test_accuracy, 1e-12);

  const std::int64_t n = 1000;
  const auto ref = eval::reference_stats(self, net, cfg, train, test, n, torch::kCPU);
  torch::manual_seed(0);
  const auto noise = torch::rand({n, 1, 28, 28}) * 2 - 1;
  const auto m = eval::evaluate(self, net, noise, ref, 500, torch::kCPU);
  std::cout << "FID of uniform noise " << m.fid << ", floor (1000 real training images) " << ref.fid_floor << "\n";
  EXPECT_GT(ref.fid_floor, 0.0);
  EXPECT_GT(m.fid, 20 * ref.fid_floor);
  std::int64_t total = 0;
  for (auto c : m.class_histogram) total += c;
  EXPECT_EQ(total, n);
  EXPECT_EQ(m.gen_features.sizes(), (std::vector<int64_t>{n, model::ClassifierImpl::kFeatureDim}));
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
