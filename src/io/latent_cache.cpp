#include "io/latent_cache.hpp"

#include <filesystem>

#include "io/h5.hpp"
#include "io/named_tensors.hpp"
#include "util/error.hpp"

namespace ddpm::io {
namespace {

struct Fnv1a {
  std::uint64_t h = 1469598103934665603ull;
  void add(const void* data, std::size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  }
};

void write_header(H5::Group& g, const LatentCache& cache) {
  write_attr(g, "images", cache.images);
  write_attr(g, "latent_mean", cache.latent_mean);
  write_attr(g, "latent_std", cache.latent_std);
  write_attr(g, "autoencoder", cache.autoencoder);
  write_attr(g, "autoencoder_step", cache.autoencoder_step);
}

LatentCache read_header(const H5::Group& g) {
  LatentCache c;
  c.images = read_attr_int(g, "images");
  c.latent_mean = read_attr_double(g, "latent_mean");
  c.latent_std = read_attr_double(g, "latent_std");
  c.autoencoder = read_attr_string(g, "autoencoder");
  c.autoencoder_step = read_attr_int(g, "autoencoder_step");
  return c;
}

}  // namespace

std::string latent_cache_path(const std::string& autoencoder_dir) { return autoencoder_dir + "/latents.h5"; }

std::string weights_fingerprint(torch::nn::Module& module) {
  Fnv1a f;
  for (const auto& [name, t] : named_tensors(module)) {
    f.add(name.data(), name.size() + 1);
    const auto sizes = t.sizes().vec();
    f.add(sizes.data(), sizes.size() * sizeof(std::int64_t));
    const auto v = t.detach().to(torch::kCPU, torch::kFloat32).contiguous();
    f.add(v.data_ptr<float>(), static_cast<std::size_t>(v.numel()) * sizeof(float));
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(f.h));
  return hex;
}

void write_latent_cache(const std::string& path, const LatentCache& cache) {
  write_atomically(path, [&](H5::H5File& file) {
    auto g = file.createGroup("latents");
    write_attr(g, "description",
               std::string("the training set's posteriors q(z | x) = N(mean, std^2) under the autoencoder whose EMA "
                           "weights have the fingerprint `autoencoder` (checkpoint step `autoencoder_step`); the "
                           "diffusion stage draws z from them and sees (z - latent_mean) / latent_std"));
    write_header(g, cache);
    write_tensor(g, "mean", cache.mean.to(torch::kCPU, torch::kFloat32).contiguous());
    write_tensor(g, "std", cache.std.to(torch::kCPU, torch::kFloat32).contiguous());
  });
}

LatentCache read_latent_cache(const std::string& path, bool tensors) {
  if (!std::filesystem::exists(path))
    throw Error(path + ": no latent cache; `ddpm_dist autoencoder CONFIG` trains the autoencoder and writes it");
  return read_verified(path, "; run `ddpm_dist autoencoder CONFIG --resume auto` to write it again", [&] {
    const auto file = open_read(path);
    if (!file.nameExists("latents")) throw DamagedFile("no group /latents");
    const auto g = file.openGroup("latents");
    auto c = read_header(g);
    if (tensors) {
      c.mean = read_tensor(g, "mean");
      c.std = read_tensor(g, "std");
      if (c.mean.size(0) != c.images || !c.std.sizes().equals(c.mean.sizes()))
        throw DamagedFile("/latents/mean and /latents/std do not hold " + std::to_string(c.images) + " posteriors");
    }
    return c;
  });
}

void write_latent_origin(const std::string& run_file, const LatentCache& header) {
  update_atomically(run_file, [&](H5::H5File& file) {
    if (file.nameExists("latent")) file.unlink("latent");
    auto g = file.createGroup("latent");
    write_attr(g, "description",
               std::string("the latents this run's diffusion model is trained on: those of the autoencoder with "
                           "this fingerprint, seen as (z - latent_mean) / latent_std"));
    write_header(g, header);
  });
}

std::optional<LatentCache> read_latent_origin(const std::string& run_file) {
  if (!std::filesystem::exists(run_file)) return std::nullopt;
  return read_verified(run_file, "", [&]() -> std::optional<LatentCache> {
    const auto file = open_read(run_file);
    if (!file.nameExists("latent")) return std::nullopt;
    return read_header(file.openGroup("latent"));
  });
}

}  // namespace ddpm::io
