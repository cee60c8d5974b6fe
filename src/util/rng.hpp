// The one source of randomness: a Stream named by (seed, purpose), from which every draw is keyed
// by integers (epoch, step, global batch, row, draw...). What a rank draws then depends on neither
// the number of ranks, nor how work is split between them, nor any global state.
#pragma once

#include <ATen/CPUGeneratorImpl.h>
#include <torch/cuda.h>
#include <torch/types.h>

#include <cstdint>
#include <initializer_list>
#include <mutex>
#include <utility>

namespace ddpm {

constexpr std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Purposes, so that two streams with the same seed and indices stay independent.
enum class Purpose : std::uint64_t {
  EpochPermutation = 1, TrainNoise = 2, SampleNoise = 3, Init = 4, Dropout = 5, SampleLabels = 6,
  AutoencoderNoise = 7, AutoencoderInit = 8, LatentDraw = 9, Measures = 10, FloorImages = 11, ForwardPicture = 12,
  RealImages = 13, Augment = 14
};

class Stream {
 public:
  using Indices = std::initializer_list<std::uint64_t>;
  Stream(std::uint64_t seed, Purpose purpose) : seed_(seed), purpose_(purpose) {}

  // The 64-bit key of `indices`: splitmix64 folded over (seed, purpose, indices...).
  std::uint64_t key(Indices indices = {}) const {
    std::uint64_t h = mix(mix(0x243F6A8885A308D3ull, seed_), static_cast<std::uint64_t>(purpose_));
    for (const auto i : indices) h = mix(h, i);
    return h;
  }
  // A CPU generator for `indices`.
  at::Generator generator(Indices indices = {}) const { return at::detail::createCPUGenerator(key(indices)); }
  // Runs draw(generator, options) for `indices` on `device`: on the CPU with a generator made for
  // it; on a GPU with the device's own generator seeded by the key, passed as nullopt, so that a
  // draw needs no host work and no copy.
  template <class Draw>
  auto draw(Indices indices, const torch::Device& device, Draw&& draw) const {
    if (device.is_cuda()) {
      torch::cuda::manual_seed_all(key(indices));
      return draw(c10::optional<at::Generator>(), torch::TensorOptions().device(device));
    }
    return draw(c10::optional<at::Generator>(generator(indices)), torch::TensorOptions());
  }
  // Runs make() with LibTorch's global CPU generator seeded by the key of `indices`, and puts its
  // state back after: for what LibTorch draws only from global state (a module's initial weights).
  // One such make() at a time in the process: another thread's seeding between this one's draws
  // would change them (ranks as threads in tests build their models side by side).
  template <class Make>
  auto with_global_generator(Indices indices, Make&& make) const {
    std::lock_guard<std::recursive_mutex> turn(global_generator_turn());
    auto global = at::detail::getDefaultCPUGenerator();
    at::Tensor saved;
    {
      std::lock_guard<std::mutex> lock(global.mutex());
      saved = global.get_state();
      global.set_current_seed(key(indices));
    }
    struct Restore {
      at::Generator& g;
      const at::Tensor& state;
      ~Restore() {
        std::lock_guard<std::mutex> lock(g.mutex());
        g.set_state(state);
      }
    } restore{global, saved};
    return make();
  }

 private:
  static std::uint64_t mix(std::uint64_t h, std::uint64_t part) { return splitmix64(h ^ splitmix64(part)); }
  // One for the process, whatever make() is (a static of the template would be one per Make).
  static std::recursive_mutex& global_generator_turn() {
    static std::recursive_mutex turn;
    return turn;
  }
  std::uint64_t seed_;
  Purpose purpose_;
};

}  // namespace ddpm
