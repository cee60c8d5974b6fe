#include "model/sampler.hpp"

#include <algorithm>

#include "util/rng.hpp"

namespace ddpm::model {
namespace {

// One generator per image; each step draws the next block of every image's own stream.
class NoiseStreams {
 public:
  NoiseStreams(std::uint64_t seed, std::int64_t first, std::int64_t count, std::vector<std::int64_t> shape)
      : shape_(std::move(shape)) {
    for (std::int64_t i = 0; i < count; ++i)
      gens_.push_back(make_generator(seed, Stream::SampleNoise, static_cast<std::uint64_t>(first + i)));
  }
  torch::Tensor draw(std::int64_t begin, std::int64_t n) {
    std::vector<std::int64_t> shape{n};
    shape.insert(shape.end(), shape_.begin(), shape_.end());
    auto out = torch::empty(shape, torch::kFloat32);
    for (std::int64_t i = 0; i < n; ++i) out[i].normal_(0.0, 1.0, gens_[begin + i]);
    return out;
  }

 private:
  std::vector<std::int64_t> shape_;
  std::vector<at::Generator> gens_;
};

}  // namespace

torch::Tensor sample_images(const EpsModel& model, const Diffusion& diffusion, const config::SampleConfig& cfg,
                           const std::vector<std::int64_t>& image_shape, const SampleRequest& request,
                           const torch::Device& device, const StepCallback& on_step,
                           const StateCallback& on_state) {
  c10::InferenceMode guard;
  const int T = diffusion.timesteps();
  const auto ts = cfg.sampler == "ddpm" ? respaced_timesteps(T, T) : respaced_timesteps(T, cfg.steps);
  const int total = static_cast<int>(ts.size());
  const bool stochastic = cfg.sampler == "ddpm" || cfg.eta > 0.0;

  NoiseStreams noise(request.seed, request.first_index, request.count, image_shape);
  std::vector<torch::Tensor> images;
  // Batches are cut at global multiples of the batch size, so an image is always computed in the
  // same batch whatever range was requested: matrix products are not bitwise independent of the
  // batch size, and this keeps the set of images exactly independent of the number of ranks.
  const std::int64_t batch = std::max<std::int64_t>(1, cfg.batch_size);
  std::vector<std::pair<std::int64_t, std::int64_t>> chunks;  // [begin, n) relative to the request
  for (std::int64_t g = request.first_index; g < request.first_index + request.count;) {
    const std::int64_t end = std::min(request.first_index + request.count, (g / batch + 1) * batch);
    chunks.emplace_back(g - request.first_index, end - g);
    g = end;
  }
  const int batches = static_cast<int>(chunks.size());
  for (int c = 0; c < batches; ++c) {
    const auto [begin, n] = chunks[c];
    auto x = noise.draw(begin, n).to(device);
    if (on_state) on_state(T, x);
    for (int i = 0; i < total; ++i) {
      const std::int64_t t = ts[i];
      const auto t_batch = torch::full({n}, t, torch::TensorOptions().dtype(torch::kLong).device(device));
      auto eps = model(x, t_batch).to(torch::kFloat32);
      const bool last = i + 1 == total;
      auto z = stochastic && !last ? noise.draw(begin, n).to(device) : torch::Tensor();
      if (cfg.sampler == "ddpm") {
        x = diffusion.ddpm_step(x, t, eps, z, cfg.variance == "posterior", cfg.clip_x0);
      } else {
        x = diffusion.ddim_step(x, t, last ? -1 : ts[i + 1], eps, z, cfg.eta, cfg.clip_x0);
      }
      if (on_state) on_state(last ? -1 : ts[i + 1], x);
      if (on_step) on_step(c * total + i + 1, batches * total);
    }
    images.push_back(x.clamp(-1.0, 1.0).cpu());
  }
  return torch::cat(images);
}

}  // namespace ddpm::model
