#include "config/config.hpp"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "config/key_table.hpp"
#include "config/validate.hpp"
#include "util/error.hpp"

namespace ddpm::config {
namespace {

template <class T>
struct is_list : std::false_type {};
template <class T>
struct is_list<std::vector<T>> : std::true_type {};

template <class T>
const char* type_name() {
  if constexpr (std::is_same_v<T, bool>) return "true or false";
  else if constexpr (std::is_integral_v<T>) return "an integer";
  else if constexpr (std::is_floating_point_v<T>) return "a number";
  else if constexpr (std::is_same_v<T, std::string>) return "a string";
  else if constexpr (std::is_same_v<T, std::vector<double>>) return "a list of numbers";
  else return "a list of integers";
}

std::string where(const std::string& source, const YAML::Node& node) {
  const auto m = node.Mark();
  if (m.is_null()) return source;
  return source + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
}

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// Collects every valid "section.key" so that unknown keys can be answered with the nearest one.
struct KeyLister {
  std::string current;
  std::vector<std::string> sections;
  std::vector<std::string> keys;
  void section(const char* s) {
    current = s;
    sections.push_back(s);
  }
  template <class T>
  void field(const char* k, T&) {
    keys.push_back(current + "." + k);
  }
};

std::string nearest(const std::string& wanted, const std::vector<std::string>& candidates) {
  std::string best;
  std::size_t best_d = std::string::npos;
  for (const auto& c : candidates) {
    const auto d = edit_distance(wanted, c);
    if (d < best_d) best_d = d, best = c;
  }
  return best;
}

class Reader {
 public:
  Reader(const YAML::Node& root, std::string source, std::set<std::string> overridden)
      : root_(root), source_(std::move(source)), overridden_(std::move(overridden)) {}

  void section(const char* s) {
    current_ = s;
    node_.reset(root_[s]);
    if (node_ && !node_.IsMap() && !node_.IsNull())
      throw Error(where(source_, node_) + ": section '" + current_ +
                  "' must be a mapping of keys to values");
  }

  template <class T>
  void field(const char* key, T& out) {
    YAML::Node value;
    if (lookup(key, value)) convert(key, value, out);
  }

  // sample.labels: a list of classes, or one of the modes by name (validate() checks which).
  void field(const char* key, LabelChoice& out) {
    YAML::Node value;
    if (!lookup(key, value)) return;
    if (value.IsSequence()) {
      out.mode = "list";
      convert(key, value, out.classes);
    } else {
      out.classes.clear();
      convert(key, value, out.mode);
    }
  }

 private:
  // The key's value in the current section, when it is there.
  bool lookup(const char* key, YAML::Node& value) {
    if (!node_ || !node_.IsMap()) return false;
    value.reset(node_[key]);
    return value.IsDefined();
  }

  template <class T>
  void convert(const char* key, const YAML::Node& value, T& out) const {
    const std::string full = current_ + "." + key;
    const std::string origin = overridden_.count(full) ? "--set " + full : where(source_, value);
    try {
      if constexpr (is_list<T>::value) {
        if (!value.IsSequence()) throw YAML::BadConversion(value.Mark());
      } else if (!value.IsScalar()) {
        throw YAML::BadConversion(value.Mark());
      }
      if constexpr (std::is_unsigned_v<T> && !std::is_same_v<T, bool>) {
        if (value.Scalar().find('-') != std::string::npos) throw YAML::BadConversion(value.Mark());
      }
      out = value.as<T>();
    } catch (const YAML::Exception&) {
      std::ostringstream got;
      got << value;
      throw Error(origin + ": key '" + full + "' must be " + type_name<T>() + ", got '" +
                  got.str() + "'");
    }
  }

  YAML::Node root_;
  YAML::Node node_;
  std::string current_;
  std::string source_;
  std::set<std::string> overridden_;
};

class Writer {
 public:
  void section(const char* s) { node_.reset(out_[s]); }
  template <class T>
  void field(const char* key, T& value) {
    node_[key] = value;
  }
  void field(const char* key, LabelChoice& value) {
    if (value.mode == "list") {
      node_[key] = value.classes;
    } else {
      node_[key] = value.mode;
    }
  }
  std::string text() const {
    YAML::Emitter e;
    // 15 significant digits print 0.2 as 0.2, not 0.20000000000000001.
    e.SetDoublePrecision(15);
    e << out_;
    return e.c_str();
  }

 private:
  YAML::Node out_;
  YAML::Node node_;
};

// Keys that were removed, with what took their place.
const std::map<std::string, std::string>& retired_keys() {
  static const std::map<std::string, std::string> retired = {
      {"sample.use_ema", "eval.weights (ema or raw) chooses the weights `ddpm_dist sample` draws from"}};
  return retired;
}

void reject_unknown_keys(const YAML::Node& root, const std::string& source,
                         const std::set<std::string>& overridden) {
  KeyLister lister;
  Config dummy;
  visit(dummy, lister);
  if (!root.IsMap())
    throw Error(where(source, root) + ": the configuration must be a mapping of sections (" +
                "run, data, model, autoencoder, diffusion, train, sample, eval)");
  for (const auto& sec : root) {
    const auto name = sec.first.as<std::string>();
    if (std::find(lister.sections.begin(), lister.sections.end(), name) == lister.sections.end())
      throw Error(where(source, sec.first) + ": unknown section '" + name +
                  "'; did you mean '" + nearest(name, lister.sections) + "'?");
    if (!sec.second.IsMap()) continue;
    for (const auto& kv : sec.second) {
      const auto full = name + "." + kv.first.as<std::string>();
      if (std::find(lister.keys.begin(), lister.keys.end(), full) != lister.keys.end()) continue;
      const std::string origin = overridden.count(full) ? "--set " + full : where(source, kv.first);
      const auto retired = retired_keys().find(full);
      if (retired != retired_keys().end())
        throw Error(origin + ": '" + full + "' is no longer a key: " + retired->second + "; remove it");
      throw Error(origin + ": unknown key '" + full + "'; did you mean '" +
                  nearest(full, lister.keys) + "'?");
    }
  }
}

}  // namespace

Config parse(const std::string& yaml_text, const std::string& source,
             const std::vector<std::string>& overrides) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::ParserException& e) {
    throw Error(source + ":" + std::to_string(e.mark.line + 1) + ":" +
                std::to_string(e.mark.column + 1) + ": YAML syntax error: " + e.msg);
  }
  if (root.IsNull()) root = YAML::Node(YAML::NodeType::Map);

  std::set<std::string> overridden;
  for (const auto& o : overrides) {
    const auto eq = o.find('=');
    const auto dot = o.find('.');
    if (eq == std::string::npos || dot == std::string::npos || dot > eq)
      throw Error("--set " + o + ": expected section.key=value, e.g. --set train.lr=1e-3");
    const auto section = o.substr(0, dot);
    const auto key = o.substr(dot + 1, eq - dot - 1);
    YAML::Node value;
    try {
      value = YAML::Load(o.substr(eq + 1));
    } catch (const YAML::ParserException& e) {
      throw Error("--set " + o + ": value does not parse as YAML: " + e.msg);
    }
    if (root[section] && !root[section].IsMap())
      throw Error("--set " + o + ": section '" + section + "' is not a mapping");
    root[section][key] = value;
    overridden.insert(section + "." + key);
  }

  reject_unknown_keys(root, source, overridden);
  Config c;
  Reader reader(root, source, overridden);
  visit(c, reader);
  c.source = source;
  validate(c);
  Writer writer;
  visit(c, writer);
  c.yaml = writer.text();
  return c;
}

std::string describe(const LabelChoice& labels) {
  if (labels.mode != "list") return labels.mode;
  std::string out;
  for (int k : labels.classes) out += (out.empty() ? "" : ", ") + std::to_string(k);
  return "[" + out + "]";
}

std::string Config::data_dir() const {
  return data.dir.empty() ? dataset_profile(data.dataset).dir : data.dir;
}

int Config::classifier_epochs() const {
  return eval.classifier_epochs > 0 ? eval.classifier_epochs : dataset_profile(data.dataset).classifier_epochs;
}

std::string Config::classifier_augment() const {
  return eval.classifier_augment == "auto" ? dataset_profile(data.dataset).classifier_augment
                                           : eval.classifier_augment;
}

std::string Config::classifier_path() const {
  return eval.classifier.empty() ? "results/classifier_" + data.dataset + ".h5" : eval.classifier;
}

std::vector<std::uint64_t> sample_seeds(const std::vector<std::int64_t>& seeds, std::uint64_t run_seed) {
  if (seeds.empty()) return {run_seed};
  return std::vector<std::uint64_t>(seeds.begin(), seeds.end());
}
std::vector<std::uint64_t> EvalConfig::sample_seeds(std::uint64_t run_seed) const {
  return config::sample_seeds(seeds, run_seed);
}
std::vector<std::uint64_t> SweepConfig::sample_seeds(std::uint64_t run_seed) const {
  return config::sample_seeds(seeds, run_seed);
}

std::string Config::classifier_stem() const {
  const auto path = classifier_path();
  const bool h5 = path.size() > 3 && path.compare(path.size() - 3, 3, ".h5") == 0;
  return h5 ? path.substr(0, path.size() - 3) : path;
}

Config load(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path);
  if (!in)
    throw Error(path + ": cannot open the configuration file; check the path (configs/ holds "
                "smoke.yaml, mnist_cpu.yaml, mnist.yaml)");
  std::stringstream text;
  text << in.rdbuf();
  return parse(text.str(), path, overrides);
}

}  // namespace ddpm::config
