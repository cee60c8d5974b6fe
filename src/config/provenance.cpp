// Which keys define what a network's weights mean, and which differ between a stored
// configuration (a checkpoint's, a cache's) and the current one.
#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>

#include "config/config.hpp"
#include "util/error.hpp"

namespace ddpm::config {

std::vector<KeyChange> changed_keys(const std::string& stored_yaml, const Config& current) {
  const YAML::Node stored = YAML::Load(stored_yaml);
  const YAML::Node now = YAML::Load(current.yaml);
  auto text = [](const YAML::Node& n) {
    // A number as the shortest text that reads back as it (the resolved YAML holds 0.2 as
    // 0.20000000000000001).
    if (n.IsScalar()) {
      const auto& t = n.Scalar();
      char* end = nullptr;
      const double v = std::strtod(t.c_str(), &end);
      if (!t.empty() && end == t.c_str() + t.size()) return fmt::format("{}", v);
    }
    YAML::Emitter e;
    e.SetDoublePrecision(15);
    e << YAML::Flow << n;
    return std::string(e.c_str());
  };
  std::vector<KeyChange> out;
  for (const auto& sec : now) {
    const auto name = sec.first.as<std::string>();
    if (!stored[name] || !stored[name].IsMap()) continue;
    for (const auto& kv : sec.second) {
      const auto key = kv.first.as<std::string>();
      // A key the stored file lacks came after it: its default keeps the old behaviour.
      const YAML::Node before = stored[name][key];
      if (!before) continue;
      const auto a = text(before), b = text(kv.second);
      if (a != b) out.push_back({name + "." + key, a, b});
    }
  }
  return out;
}

bool is_model_key(const std::string& key) { return key.rfind("model.", 0) == 0; }

std::vector<KeyChange> changed_defining_keys(const std::string& stored_yaml, const Config& current,
                                             const KeyFilter& defining) {
  std::vector<KeyChange> all;
  try {
    all = changed_keys(parse(stored_yaml, "the stored configuration").yaml, current);
  } catch (const Error&) {
    all = changed_keys(stored_yaml, current);  // from another version: compare the keys it has
  }
  std::vector<KeyChange> out;
  for (auto& c : all)
    if (defining ? defining(c.key) : is_model_key(c.key)) out.push_back(std::move(c));
  return out;
}

bool defines_diffusion(const Config& cfg, const std::string& key) {
  if (key == "diffusion.p_mean" || key == "diffusion.p_std") return false;
  return key.rfind("model.", 0) == 0 || key.rfind("diffusion.", 0) == 0 || key == "data.dataset" ||
         (cfg.latent() && defines_autoencoder(key));
}

bool defines_classifier(const std::string& key) { return key == "data.dataset"; }

bool guide_must_match(const std::string& key) {
  if (key == "diffusion.prediction" || key == "diffusion.sigma_data" || key == "diffusion.p_mean" ||
      key == "diffusion.p_std")
    return false;
  return key.rfind("diffusion.", 0) == 0 || key == "data.dataset" || key == "model.num_classes";
}

bool defines_autoencoder(const std::string& key) {
  if (key == "data.dataset") return true;
  if (key.rfind("autoencoder.", 0) != 0) return false;
  return key != "autoencoder.steps" && key != "autoencoder.batch_size" && key != "autoencoder.lr";
}

}  // namespace ddpm::config
