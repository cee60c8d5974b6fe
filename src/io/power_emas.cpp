#include "io/power_emas.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <regex>

#include "io/h5.hpp"
#include "util/clock.hpp"
#include "util/error.hpp"

namespace ddpm::io {
namespace fs = std::filesystem;

void write_power_emas(H5::Group& root, const std::string& name, const std::vector<PowerEmaState>& emas) {
  auto group = root.createGroup(name);
  write_attr(group, "description",
             std::string("power-function EMAs for post-hoc EMA (Karras et al. 2024): one subgroup per average, "
                         "its length sigma_rel and the updates it has seen"));
  for (std::size_t k = 0; k < emas.size(); ++k) {
    write_named(group, std::to_string(k), emas[k].values, fmt::format("power-function EMA, sigma_rel {}", emas[k].sigma_rel));
    auto sub = group.openGroup(std::to_string(k));
    write_attr(sub, "sigma_rel", emas[k].sigma_rel);
    write_attr(sub, "updates", emas[k].updates);
  }
}

namespace {
std::string lengths(const std::vector<double>& s) {
  std::string out;
  for (double v : s) out += (out.empty() ? "" : ", ") + fmt::format("{}", v);
  return "[" + out + "]";
}
}  // namespace

PowerEmasRead read_power_emas(const std::string& path, const H5::Group& root, const std::string& name,
                              const std::vector<PowerEmaState>& emas) {
  std::vector<double> wanted, held;
  for (const auto& e : emas) wanted.push_back(e.sigma_rel);
  if (root.nameExists(name)) {
    const auto group = root.openGroup(name);
    for (hsize_t k = 0; k < group.getNumObjs(); ++k)
      held.push_back(read_attr_double(group.openGroup(std::to_string(k)), "sigma_rel"));
  }
  if (held != wanted)
    throw Error(path + ": holds the power-function EMAs " + lengths(held) + ", and train.phema_sigma_rels is " +
                lengths(wanted) + "; they are tracked from a run's first step, so set train.phema_sigma_rels: " +
                lengths(held) + " to continue this run, or start a new one (another run.name)");
  PowerEmasRead read;
  const auto group = root.openGroup(name);
  for (std::size_t k = 0; k < emas.size(); ++k) {
    const auto sub = group.openGroup(std::to_string(k));
    check_named(path, sub, name + "/" + std::to_string(k), emas[k].values);
    read.updates.push_back(read_attr_int(sub, "updates"));
    read.values.push_back(read_named(sub, emas[k].values));
  }
  return read;
}

void assign_power_emas(std::vector<PowerEmaState>& emas, const PowerEmasRead& read) {
  for (std::size_t k = 0; k < emas.size(); ++k) {
    assign_named(emas[k].values, read.values[k]);
    emas[k].updates = read.updates[k];
  }
}

std::string power_ema_snapshot_path(const std::string& run_dir, std::int64_t step) {
  char name[40];
  std::snprintf(name, sizeof name, "snapshot_%08lld.h5", static_cast<long long>(step));
  return run_dir + "/phema/" + name;
}

void write_power_ema_snapshot(const std::string& path, std::int64_t step, const std::vector<PowerEmaState>& emas,
                              const std::string& config_yaml) {
  fs::create_directories(fs::path(path).parent_path());
  write_atomically(path, [&](H5::H5File& file) {
    auto root = file.openGroup("/");
    write_power_emas(root, "phema", emas);
    write_attr(root, "step", step);
    write_attr(root, "config", config_yaml);
    write_attr(root, "version", std::string(DDPM_VERSION));
    write_attr(root, "created", now_utc());
    write_attr(root, "complete", std::int64_t{1});
  });
}

std::vector<PowerEmaSnapshot> read_power_ema_snapshots(const std::string& run_dir, const Named& like,
                                                       std::int64_t last_step) {
  std::vector<std::pair<std::int64_t, std::string>> files;
  const auto dir = run_dir + "/phema";
  if (fs::is_directory(dir)) {
    static const std::regex name(R"(snapshot_(\d{8})\.h5)");
    for (const auto& entry : fs::directory_iterator(dir)) {
      std::smatch m;
      const auto file = entry.path().filename().string();
      if (!std::regex_match(file, m, name)) continue;
      const auto step = std::stoll(m[1].str());
      if (last_step < 0 || step <= last_step) files.emplace_back(step, entry.path().string());
    }
  }
  std::sort(files.begin(), files.end());
  std::vector<PowerEmaSnapshot> out;
  for (const auto& [step, path] : files) {
    auto file = open_read(path);
    PowerEmaSnapshot snap{path, step, {}};
    read_verified(path, "; it cannot be used for post-hoc EMA (delete it to reconstruct from the others)", [&] {
      const auto root = file.openGroup("/");
      if (!has_attr(root, "complete")) throw DamagedFile("incomplete (no 'complete' attribute)");
      const auto group = root.openGroup("phema");
      for (hsize_t k = 0; k < group.getNumObjs(); ++k) {
        const auto sub = group.openGroup(std::to_string(k));
        PowerEmaState e;
        e.sigma_rel = read_attr_double(sub, "sigma_rel");
        e.updates = read_attr_int(sub, "updates");
        for (const auto& [n, t] : like) e.values.emplace_back(n, torch::empty_like(t, torch::kFloat32));
        check_named(path, sub, "phema/" + std::to_string(k), e.values);
        const auto values = read_named(sub, e.values);
        assign_named(e.values, values);
        snap.emas.push_back(std::move(e));
      }
      return 0;
    });
    out.push_back(std::move(snap));
  }
  return out;
}

}  // namespace ddpm::io
