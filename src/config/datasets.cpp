// The data sets ddpm_dist names, and what was measured on each (docs/datasets.md).
#include <algorithm>
#include <filesystem>

#include "config/config.hpp"
#include "util/error.hpp"

namespace ddpm::config {

const std::vector<DatasetProfile>& dataset_profiles() {
  // MNIST's classifier recipe is the one its published figures were measured with; Fashion-MNIST's
  // was chosen by docs/datasets.md's study of the classifier.
  static const std::vector<DatasetProfile> profiles{
      {"mnist", "data/mnist", 3, "none",
       {"mnist.yaml", "mnist_cpu.yaml", "mnist_cpu_pixel.yaml", "mnist_latent.yaml", "mnist_cond.yaml",
        "mnist_seed.yaml"}},
      {"fashion_mnist", "/usr/share/datasets/fashion-mnist", 15, "shift_flip", {"fashion_cpu.yaml", "fashion_cond.yaml"}},
  };
  return profiles;
}

const DatasetProfile& dataset_profile(const std::string& name) {
  for (const auto& p : dataset_profiles())
    if (p.name == name) return p;
  std::string known;
  for (const auto& p : dataset_profiles()) known += (known.empty() ? "" : ", ") + p.name;
  throw Error("data.dataset: unknown data set '" + name + "' (known: " + known + ")");
}

std::string unmeasured_dataset_warning(const Config& cfg) {
  const auto file = std::filesystem::path(cfg.source).filename().string();
  for (const auto& measured_on : dataset_profiles()) {
    const auto& names = measured_on.configs;
    if (measured_on.name == cfg.data.dataset || std::find(names.begin(), names.end(), file) == names.end()) continue;
    const auto& own = dataset_profile(cfg.data.dataset).configs;
    return cfg.source + " was chosen by measurements on " + measured_on.name + ", and this run's data.dataset is " +
           cfg.data.dataset + ": its autoencoder, model and sampler may serve " + cfg.data.dataset + " badly" +
           (own.empty() ? std::string(" (no configuration was measured on it; docs/datasets.md says what to measure)")
                        : "; the configuration measured on it is configs/" + own.front());
  }
  return "";
}

}  // namespace ddpm::config
