// The building blocks the networks share (U-Net, autoencoder): convolutions with "same" padding,
// group norms that run in fp32 under autocast, and the FLOP counts of both kinds of layer.
#pragma once

#include <torch/torch.h>

namespace ddpm::model {

// A k x k convolution padded to keep the size (halving it with stride 2).
torch::nn::Conv2d conv(int in, int out, int k, int stride = 1);
torch::nn::GroupNorm group_norm(int groups, int channels);
// Under bf16 autocast the norms still run in fp32: their statistics need the precision, and
// LibTorch 1.13's CPU autocast would hand GroupNorm a bf16 input with fp32 weights, which fails.
torch::Tensor norm_fp32(torch::nn::GroupNorm& norm, const torch::Tensor& x);
// Nearest-neighbour upsampling by 2 in both directions.
torch::Tensor upsample2(const torch::Tensor& x);

// FLOPs of one image: 2 per multiply-add (out_res: the output's side).
double conv_flops(const torch::nn::Conv2d& c, int out_res);
double linear_flops(const torch::nn::Linear& l);

}  // namespace ddpm::model
