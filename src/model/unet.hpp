// The noise-prediction network eps_theta(x_t, t): a small DDPM U-Net ("U-Net light").
#pragma once

#include <torch/torch.h>

#include "config/config.hpp"

namespace ddpm::model {

class ResBlockImpl : public torch::nn::Module {
 public:
  // `layer` numbers the blocks of a network for their dropout masks (model/dropout.hpp).
  // temb_dim 0: a block without a time input (forward ignores `temb`).
  ResBlockImpl(int in_ch, int out_ch, int temb_dim, int groups, double dropout, int layer);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& temb, const torch::Tensor& dropout_keys);
  // Forward FLOPs for one image at a res x res input (see UNetImpl::forward_flops).
  double flops(int res) const;

 private:
  torch::nn::GroupNorm norm1{nullptr}, norm2{nullptr};
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, skip{nullptr};
  torch::nn::Linear temb_proj{nullptr};
  double dropout_p = 0;
  int dropout_layer = 0;
};
TORCH_MODULE(ResBlock);

// Single-head self-attention over the spatial positions, with a residual connection.
class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(int channels, int groups);
  torch::Tensor forward(const torch::Tensor& x);
  double flops(int res) const;

 private:
  torch::nn::GroupNorm norm{nullptr};
  torch::nn::Conv2d qkv{nullptr}, proj{nullptr};
};
TORCH_MODULE(Attention);

class UNetImpl : public torch::nn::Module {
 public:
  explicit UNetImpl(const config::ModelConfig& cfg);
  // x: [B, C, H, W] in [-1, 1]; t: [B] timesteps in [0, T). Returns what diffusion.prediction names.
  // labels [B] (long): a conditional model's classes, num_classes meaning "no class"; undefined:
  // "no class" for every row. An unconditional model takes none.
  // dropout_keys [B]: each row's dropout masks while training (model/dropout.hpp); undefined:
  // drawn from the default generator.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& labels = {},
                        const torch::Tensor& dropout_keys = {});
  int num_classes() const { return cfg_.num_classes; }
  std::int64_t parameter_count() const;
  // FLOPs of one image's forward pass, counted from the layer shapes: 2 per multiply-add of the
  // convolutions, linear layers and attention products; norms and activations (a few percent)
  // are left out. A training step costs about 3x this per image (backward: two products per one).
  double forward_flops() const;

 private:
  // One entry per block of the down path, the middle, the up path, in execution order.
  struct Block {
    ResBlock res{nullptr};
    Attention attn{nullptr};
    torch::nn::Conv2d resample{nullptr};  // stride-2 conv (down) or conv after nearest upsampling (up)
  };
  config::ModelConfig cfg_;
  int temb_dim_ = 0;
  torch::nn::Linear temb1{nullptr}, temb2{nullptr};
  torch::nn::Embedding class_emb{nullptr};  // num_classes + 1 rows, added to the time embedding
  torch::nn::Conv2d conv_in{nullptr}, conv_out{nullptr};
  torch::nn::GroupNorm norm_out{nullptr};
  std::vector<Block> down_, up_;
  ResBlock mid1{nullptr}, mid2{nullptr};
  Attention mid_attn{nullptr};
};
TORCH_MODULE(UNet);

// Sinusoidal embedding of integer timesteps, [B] -> [B, dim].
torch::Tensor timestep_embedding(const torch::Tensor& t, int dim);

}  // namespace ddpm::model
