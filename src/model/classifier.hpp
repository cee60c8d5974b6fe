// The MNIST classifier whose feature space stands in for Inception's in FID (Inception weights
// cannot be downloaded here): two conv-pool stages, a 128-d feature layer, a linear head.
#pragma once

#include <torch/torch.h>

namespace ddpm::model {

class ClassifierImpl : public torch::nn::Module {
 public:
  static constexpr int kFeatureDim = 128;
  ClassifierImpl();
  // x: float [B, 1, 28, 28] in [-1, 1]. Returns the feature vectors [B, kFeatureDim].
  torch::Tensor features(const torch::Tensor& x);
  // Logits [B, 10]. In training, dropout on the features is keyed by `keys` [B] (model/dropout.hpp),
  // one per row of the global batch, so that its masks do not depend on the ranks.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& keys = {});
  torch::Tensor head(const torch::Tensor& features) { return fc2(features); }

 private:
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(Classifier);

}  // namespace ddpm::model
