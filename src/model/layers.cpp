#include "model/layers.hpp"

namespace ddpm::model {
namespace nn = torch::nn;

nn::Conv2d conv(int in, int out, int k, int stride) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, k).stride(stride).padding(k / 2));
}

nn::GroupNorm group_norm(int groups, int channels) { return nn::GroupNorm(nn::GroupNormOptions(groups, channels)); }

torch::Tensor norm_fp32(nn::GroupNorm& norm, const torch::Tensor& x) { return norm(x.to(torch::kFloat32)); }

torch::Tensor upsample2(const torch::Tensor& x) {
  namespace F = torch::nn::functional;
  return F::interpolate(x, F::InterpolateFuncOptions().scale_factor(std::vector<double>{2.0, 2.0}).mode(torch::kNearest));
}

double conv_flops(const nn::Conv2d& c, int out_res) {
  const auto& o = c->options;
  return 2.0 * double(o.in_channels()) / double(o.groups()) * double(o.out_channels()) * double((*o.kernel_size())[0]) *
         double((*o.kernel_size())[1]) * out_res * out_res;
}

double linear_flops(const nn::Linear& l) { return 2.0 * double(l->options.in_features()) * double(l->options.out_features()); }

}  // namespace ddpm::model
