#include "io/feature_cache.hpp"

#include "io/h5.hpp"
#include "util/error.hpp"

namespace ddpm::io {

std::string feature_cache_path(const config::Config& cfg) { return cfg.classifier_stem() + "_features.h5"; }

void write_feature_cache(const std::string& path, const FeatureCache& cache) {
  write_atomically(path, [&](H5::H5File& file) {
    auto g = file.createGroup("features");
    write_attr(g, "description",
               std::string("features of the real images under the evaluation classifier whose weights have the "
                           "fingerprint `classifier`; memorisation_threshold: the 1% quantile of the distances from "
                           "test images to their nearest training image"));
    write_attr(g, "classifier", cache.classifier);
    write_attr(g, "dataset", cache.dataset);
    write_attr(g, "memorisation_threshold", cache.memorisation_threshold);
    write_tensor(g, "train", cache.train.to(torch::kCPU, torch::kFloat32).contiguous());
    write_tensor(g, "test", cache.test.to(torch::kCPU, torch::kFloat32).contiguous());
  });
}

FeatureCache read_feature_cache(const std::string& path) {
  return read_verified(path, "; delete it: the next evaluation computes it again", [&] {
    const auto file = open_read(path);
    if (!file.nameExists("features")) throw DamagedFile("no group /features");
    const auto g = file.openGroup("features");
    FeatureCache c;
    c.classifier = read_attr_string(g, "classifier");
    c.dataset = read_attr_string(g, "dataset");
    c.memorisation_threshold = read_attr_double(g, "memorisation_threshold");
    c.train = read_tensor(g, "train");
    c.test = read_tensor(g, "test");
    return c;
  });
}

}  // namespace ddpm::io
