#include "model/latent_space.hpp"

namespace ddpm::model {
namespace {

template <class F>
torch::Tensor in_batches(const torch::Tensor& x, std::int64_t batch, F&& f) {
  std::vector<torch::Tensor> out;
  for (std::int64_t i = 0; i < x.size(0); i += batch) out.push_back(f(x.slice(0, i, std::min(x.size(0), i + batch))));
  return out.empty() ? x : torch::cat(out);
}

}  // namespace

SampleSpace::SampleSpace(std::vector<std::int64_t> image_shape) : shape_(std::move(image_shape)) {}

SampleSpace::SampleSpace(Autoencoder autoencoder, LatentScale scale)
    : shape_(autoencoder->latent_shape()), ae_(std::move(autoencoder)), scale_(scale) {}

torch::Tensor SampleSpace::to_images(const torch::Tensor& x, std::int64_t batch) const {
  if (!latent()) return x.clamp(-1.0, 1.0);
  c10::InferenceMode guard;
  return in_batches(x, batch, [&](const torch::Tensor& z) {
    return ae_->decode(scale_.unstandardise(z.to(torch::kFloat32))).clamp(-1.0, 1.0);
  });
}

torch::Tensor SampleSpace::from_images(const torch::Tensor& images, std::int64_t batch) const {
  if (!latent()) return images;
  c10::InferenceMode guard;
  return in_batches(images, batch, [&](const torch::Tensor& x) { return scale_.standardise(ae_->encode(x).mean); });
}

double SampleSpace::decode_flops() const { return latent() ? ae_->decode_flops() : 0.0; }

}  // namespace ddpm::model
