#include "model/precision.hpp"

#include <spdlog/spdlog.h>

#include <fstream>
#include <set>

#include "model/cuda_graph.hpp"
#include "model/guidance.hpp"
#include "util/torch_compat.hpp"

namespace ddpm::model {
namespace {

// The CPU feature flags of the first processor in /proc/cpuinfo (Linux), space-separated; read
// once, since every stage asks.
const std::string& cpu_flags() {
  static const std::string flags = [] {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line))
      if (line.rfind("flags", 0) == 0 || line.rfind("Features", 0) == 0) return " " + line.substr(line.find(':') + 1) + " ";
    return std::string();
  }();
  return flags;
}

}  // namespace

bool bf16_supported(const torch::Device& device, std::string* why) {
  if (device.is_cuda()) return true;
  const auto& flags = cpu_flags();
  for (const char* f : {" avx512_bf16 ", " amx_bf16 ", " bf16 "})
    if (flags.find(f) != std::string::npos) return true;
  if (why) *why = "this CPU has no bf16 arithmetic (no avx512_bf16 or amx_bf16 flag in /proc/cpuinfo)";
  return false;
}

void warn_unavailable_once(const std::string& key, const std::string& what, const std::string& why,
                           const std::string& instead, const std::string& off) {
  static std::set<std::string> warned;
  if (warned.insert(key).second)
    spdlog::warn("{}: {} asked for, but {}; {} (set {}: {} to silence this)", key, what, why, instead, key, off);
}

bool resolve_bf16(const std::string& precision, const torch::Device& device, const std::string& key) {
  if (precision == "auto") return !device.is_cuda() && bf16_supported(device);
  if (precision != "bf16") return false;
  std::string why;
  if (bf16_supported(device, &why)) return true;
  warn_unavailable_once(key, "bf16", why, "running fp32", "fp32");
  return false;
}

AutocastScope::AutocastScope(const torch::Device& device, bool enabled) : type_(device.type()), enabled_(enabled) {
  if (!enabled_) return;
  previous_ = compat::autocast_enabled(type_);
  compat::set_autocast(type_, true, torch::kBFloat16);
  at::autocast::increment_nesting();
}

AutocastScope::~AutocastScope() {
  if (!enabled_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  compat::set_autocast(type_, previous_, torch::kBFloat16);
}

Network network(UNet& net, const torch::Device& device, bool bf16, bool cuda_graphs) {
  Network plain = [&net, device, bf16](const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& labels) {
    AutocastScope autocast(device, bf16);
    return net->forward(x, t, labels);
  };
  return cuda_graphs ? graphed_network(std::move(plain), device) : plain;
}

Denoiser sampling_denoiser(UNet& net, const Diffusion& diffusion, const config::SampleConfig& cfg,
                           const torch::Device& device, const GuideNet* guide) {
  const bool bf16 = resolve_bf16(cfg.precision, device, "sample.precision");
  const bool graphs = resolve_cuda_graphs(cfg.cuda_graphs, device, "sample.cuda_graphs");
  auto denoise = diffusion.denoiser(network(net, device, bf16, graphs));
  if (!guide) return guided(std::move(denoise), cfg.guidance, net->num_classes());
  return autoguided(std::move(denoise), guide->diffusion.denoiser(network(guide->net, device, bf16, graphs)),
                    cfg.guidance);
}

}  // namespace ddpm::model
