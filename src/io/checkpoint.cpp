#include "io/checkpoint.hpp"

#include <cstdio>
#include <filesystem>
#include <regex>

#include "io/h5.hpp"
#include "util/error.hpp"

namespace ddpm::io {
namespace fs = std::filesystem;
namespace {

void write_module(H5::H5File& file, const std::string& group_name, torch::nn::Module& m) {
  auto group = file.createGroup(group_name);
  for (const auto& p : m.named_parameters()) write_tensor(group, p.key(), p.value());
  for (const auto& b : m.named_buffers()) write_tensor(group, b.key(), b.value());
}

void read_module(const std::string& path, const H5::H5File& file, const std::string& group_name,
                 torch::nn::Module& m) {
  const auto group = file.openGroup(group_name);
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& p : m.named_parameters()) tensors.emplace_back(p.key(), p.value());
  for (const auto& b : m.named_buffers()) tensors.emplace_back(b.key(), b.value());

  std::string problems;
  for (const auto& [name, t] : tensors) {
    if (!group.nameExists(name)) {
      problems += "\n  missing " + group_name + "/" + name;
      continue;
    }
    const auto shape = dataset_shape(group, name);
    if (shape != t.sizes().vec())
      problems += "\n  " + group_name + "/" + name + ": file has " + c10::str(c10::IntArrayRef(shape)) +
                  ", model has " + c10::str(t.sizes());
  }
  if (group.getNumObjs() != tensors.size())
    problems += "\n  " + group_name + " holds " + std::to_string(group.getNumObjs()) + " tensors, the model has " +
                std::to_string(tensors.size());
  if (!problems.empty())
    throw Error(path + ": checkpoint of another architecture; compare its /config attribute with the model "
                "section of your config:" + problems);
  torch::NoGradGuard no_grad;
  for (auto& [name, t] : tensors) t.copy_(read_tensor(group, name));
}

}  // namespace

std::string checkpoint_path(const std::string& run_dir, std::int64_t step) {
  char name[32];
  std::snprintf(name, sizeof name, "step_%08lld.h5", static_cast<long long>(step));
  return run_dir + "/checkpoints/" + name;
}

void write_checkpoint(const std::string& path, torch::nn::Module& model, torch::nn::Module& ema,
                      const CheckpointInfo& info) {
  write_atomically(path, [&](H5::H5File& file) {
    write_module(file, "model", model);
    write_module(file, "ema", ema);
    auto root = file.openGroup("/");
    write_attr(root, "step", info.step);
    write_attr(root, "config", info.config_yaml);
    write_attr(root, "version", std::string(DDPM_VERSION));
    // Written last: a reader trusts only files that carry it.
    write_attr(root, "complete", std::int64_t{1});
  });
}

CheckpointInfo read_checkpoint(const std::string& path, torch::nn::Module& model, torch::nn::Module& ema) {
  auto file = open_read(path);
  try {
    const auto root = file.openGroup("/");
    if (!has_attr(root, "complete"))
      throw Error(path + ": incomplete checkpoint (no 'complete' attribute); use an older one");
    read_module(path, file, "model", model);
    read_module(path, file, "ema", ema);
    return {read_attr_int(root, "step"), read_attr_string(root, "config")};
  } catch (const H5::Exception& e) {
    throw Error(path + ": unreadable checkpoint (" + e.getDetailMsg() + "); use an older one");
  }
}

std::optional<std::string> latest_checkpoint(const std::string& run_dir) {
  const fs::path dir = fs::path(run_dir) / "checkpoints";
  if (!fs::is_directory(dir)) return std::nullopt;
  static const std::regex pattern(R"(step_(\d{8})\.h5)");
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) {
    const auto name = e.path().filename().string();
    if (std::regex_match(name, pattern)) names.push_back(name);
  }
  std::sort(names.rbegin(), names.rend());
  for (const auto& n : names) {
    const auto path = (dir / n).string();
    try {
      auto file = open_read(path);
      if (has_attr(file.openGroup("/"), "complete")) return path;
    } catch (const std::exception&) {
      // An unreadable newest file falls through to the one before it.
    }
  }
  return std::nullopt;
}

}  // namespace ddpm::io
