#include "model/classifier.hpp"

#include "model/dropout.hpp"

namespace ddpm::model {
namespace nn = torch::nn;

ClassifierImpl::ClassifierImpl() {
  conv1 = register_module("conv1", nn::Conv2d(nn::Conv2dOptions(1, 32, 5).padding(2)));
  conv2 = register_module("conv2", nn::Conv2d(nn::Conv2dOptions(32, 64, 5).padding(2)));
  fc1 = register_module("fc1", nn::Linear(64 * 7 * 7, kFeatureDim));
  fc2 = register_module("fc2", nn::Linear(kFeatureDim, 10));
}

torch::Tensor ClassifierImpl::features(const torch::Tensor& x) {
  auto h = torch::max_pool2d(torch::relu(conv1(x)), 2);
  h = torch::max_pool2d(torch::relu(conv2(h)), 2);
  return torch::relu(fc1(h.flatten(1)));
}

torch::Tensor ClassifierImpl::forward(const torch::Tensor& x, const torch::Tensor& keys) {
  return fc2(keyed_dropout(features(x), 0.3, keys, 0, is_training()));
}

}  // namespace ddpm::model
