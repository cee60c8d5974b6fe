#include "data/mnist.hpp"

#include <torch/torch.h>

#include "data/idx.hpp"
#include "util/error.hpp"

namespace ddpm::data {

Dataset load_dataset(const std::string& dir, Split split) {
  const std::string prefix = dir + (split == Split::Train ? "/train" : "/t10k");
  Dataset d{read_idx(prefix + "-images-idx3-ubyte", 3), read_idx(prefix + "-labels-idx1-ubyte", 1)};
  if (d.images.size(0) != d.labels.size(0))
    throw Error(prefix + "-labels-idx1-ubyte: holds " + std::to_string(d.labels.size(0)) +
                " labels but " + prefix + "-images-idx3-ubyte holds " +
                std::to_string(d.images.size(0)) +
                " images; the two files come from different sets — run launch/setup.sh again");
  // The U-Net and the evaluation classifier are built for the MNIST format's 1 x 28 x 28.
  if (d.images.size(1) != 28 || d.images.size(2) != 28)
    throw Error(prefix + "-images-idx3-ubyte: images of " + std::to_string(d.images.size(1)) + "x" +
                std::to_string(d.images.size(2)) + " pixels; ddpm_dist trains on MNIST-format sets of 28x28 "
                "grey images (data.dataset: mnist or fashion_mnist)");
  return d;
}

torch::Tensor to_model_range(const torch::Tensor& images_u8) {
  return images_u8.to(torch::kFloat32).unsqueeze(1).mul_(2.0 / 255.0).sub_(1.0);
}

torch::Tensor to_uint8(const torch::Tensor& images) {
  return images.detach().to(torch::kFloat32).squeeze(1).add(1.0).mul_(127.5).round_().clamp_(0, 255).to(
      torch::kUInt8);
}

}  // namespace ddpm::data
