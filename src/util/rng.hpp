// Seed derivation: every random stream is named by a tuple of integers (run seed, purpose, index),
// so that what a rank draws never depends on how many ranks there are.
#pragma once

#include <ATen/CPUGeneratorImpl.h>
#include <torch/cuda.h>
#include <torch/types.h>

#include <cstdint>
#include <initializer_list>

namespace ddpm {

constexpr std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

inline std::uint64_t derive_seed(std::initializer_list<std::uint64_t> parts) {
  std::uint64_t h = 0x243F6A8885A308D3ull;
  for (auto p : parts) h = splitmix64(h ^ splitmix64(p));
  return h;
}

// Purposes, so that two streams with the same indices stay independent.
enum class Stream : std::uint64_t { EpochPermutation = 1, TrainNoise = 2, SampleNoise = 3, Init = 4, Dropout = 5,
                                   SampleLabels = 6, AutoencoderNoise = 7, AutoencoderInit = 8,
                                   LatentDraw = 9, Measures = 10 };

inline at::Generator make_generator(std::uint64_t seed, Stream purpose, std::uint64_t index) {
  return at::detail::createCPUGenerator(derive_seed({seed, static_cast<std::uint64_t>(purpose), index}));
}

// Runs draw(generator, options) with a generator seeded by `derived` (a derive_seed value): on the
// CPU one made for it; on a GPU the device's own generator seeded with it, passed as nullopt, so a
// draw needs no host work and no copy.
template <class Draw>
auto draw_seeded(std::uint64_t derived, const torch::Device& device, Draw&& draw) {
  if (device.is_cuda()) {
    torch::cuda::manual_seed_all(derived);
    return draw(c10::optional<at::Generator>(), torch::TensorOptions().device(device));
  }
  return draw(c10::optional<at::Generator>(at::detail::createCPUGenerator(derived)), torch::TensorOptions());
}

}  // namespace ddpm
