#include "model/unet.hpp"

#include <algorithm>
#include <cmath>

#include "model/dropout.hpp"
#include "model/layers.hpp"
#include "util/error.hpp"

namespace ddpm::model {
namespace nn = torch::nn;

torch::Tensor timestep_embedding(const torch::Tensor& t, int dim) {
  const int half = dim / 2;
  auto freqs = torch::exp(torch::arange(half, torch::TensorOptions().dtype(torch::kFloat32).device(t.device())) *
                          (-std::log(10000.0) / half));
  auto args = t.to(torch::kFloat32).unsqueeze(1) * freqs.unsqueeze(0);
  auto emb = torch::cat({torch::sin(args), torch::cos(args)}, 1);
  if (dim % 2 == 1) emb = torch::nn::functional::pad(emb, torch::nn::functional::PadFuncOptions({0, 1}));
  return emb;
}

ResBlockImpl::ResBlockImpl(int in_ch, int out_ch, int temb_dim, int groups, double p, int layer) {
  norm1 = register_module("norm1", group_norm(groups, in_ch));
  conv1 = register_module("conv1", conv(in_ch, out_ch, 3));
  if (temb_dim > 0) temb_proj = register_module("temb_proj", nn::Linear(temb_dim, out_ch));
  norm2 = register_module("norm2", group_norm(groups, out_ch));
  dropout_p = p;
  dropout_layer = layer;
  conv2 = register_module("conv2", conv(out_ch, out_ch, 3));
  if (in_ch != out_ch) skip = register_module("skip", conv(in_ch, out_ch, 1));
}

torch::Tensor ResBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& temb, const torch::Tensor& keys) {
  auto h = conv1(torch::silu(norm_fp32(norm1, x)));
  if (temb_proj) h = h + temb_proj(torch::silu(temb)).unsqueeze(-1).unsqueeze(-1);
  h = conv2(keyed_dropout(torch::silu(norm_fp32(norm2, h)), dropout_p, keys, dropout_layer, is_training()));
  return (skip ? skip(x) : x) + h;
}

double ResBlockImpl::flops(int res) const {
  return conv_flops(conv1, res) + conv_flops(conv2, res) + (skip ? conv_flops(skip, res) : 0.0) +
         (temb_proj ? linear_flops(temb_proj) : 0.0);
}

AttentionImpl::AttentionImpl(int channels, int groups) {
  norm = register_module("norm", group_norm(groups, channels));
  qkv = register_module("qkv", conv(channels, 3 * channels, 1));
  proj = register_module("proj", conv(channels, channels, 1));
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x) {
  const auto B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  auto qkv_out = qkv(norm_fp32(norm, x)).reshape({B, 3, C, H * W});
  auto q = qkv_out.select(1, 0), k = qkv_out.select(1, 1), v = qkv_out.select(1, 2);
  // [B, HW, HW] weights over key positions; the scale keeps logits O(1) at init; softmax in fp32.
  auto w = torch::softmax(torch::bmm(q.transpose(1, 2), k) * (1.0 / std::sqrt(double(C))), -1, torch::kFloat32);
  auto h = torch::bmm(v, w.transpose(1, 2)).reshape({B, C, H, W});
  return x + proj(h);
}

double AttentionImpl::flops(int res) const {
  const double hw = double(res) * res, c = double(proj->options.in_channels());
  return conv_flops(qkv, res) + conv_flops(proj, res) + 2 * (2.0 * hw * hw * c);
}

UNetImpl::UNetImpl(const config::ModelConfig& cfg) : cfg_(cfg) {
  const int base = cfg.base_channels, g = cfg.groups;
  temb_dim_ = base * cfg.time_embed_mult;
  temb1 = register_module("temb1", nn::Linear(base, temb_dim_));
  temb2 = register_module("temb2", nn::Linear(temb_dim_, temb_dim_));
  conv_in = register_module("conv_in", conv(cfg.in_channels, base, 3));

  auto has_attn = [&](int res) {
    return std::find(cfg.attention_resolutions.begin(), cfg.attention_resolutions.end(), res) !=
           cfg.attention_resolutions.end();
  };
  const int levels = static_cast<int>(cfg.channel_mult.size());
  std::vector<int> skip_channels{base};
  int ch = base, res = cfg.image_size, res_blocks = 0;
  for (int level = 0; level < levels; ++level) {
    const int out = base * cfg.channel_mult[level];
    for (int i = 0; i < cfg.num_res_blocks; ++i) {
      Block b;
      const std::string name = "down" + std::to_string(level) + "_" + std::to_string(i);
      b.res = register_module(name + "_res", ResBlock(ch, out, temb_dim_, g, cfg.dropout, res_blocks++));
      if (has_attn(res)) b.attn = register_module(name + "_attn", Attention(out, g));
      ch = out;
      down_.push_back(b);
      skip_channels.push_back(ch);
    }
    if (level + 1 < levels) {
      Block b;
      b.resample = register_module("down" + std::to_string(level) + "_resample", conv(ch, ch, 3, 2));
      down_.push_back(b);
      skip_channels.push_back(ch);
      res /= 2;
    }
  }

  mid1 = register_module("mid1", ResBlock(ch, ch, temb_dim_, g, cfg.dropout, res_blocks++));
  if (cfg.mid_attention) mid_attn = register_module("mid_attn", Attention(ch, g));
  mid2 = register_module("mid2", ResBlock(ch, ch, temb_dim_, g, cfg.dropout, res_blocks++));

  // The up path has one more block per level than the down path: it also consumes the skip
  // of the resampling conv (or of conv_in at the top).
  for (int level = levels - 1; level >= 0; --level) {
    const int out = base * cfg.channel_mult[level];
    for (int i = 0; i <= cfg.num_res_blocks; ++i) {
      Block b;
      const std::string name = "up" + std::to_string(level) + "_" + std::to_string(i);
      const int skip = skip_channels.back();
      skip_channels.pop_back();
      b.res = register_module(name + "_res", ResBlock(ch + skip, out, temb_dim_, g, cfg.dropout, res_blocks++));
      if (has_attn(res)) b.attn = register_module(name + "_attn", Attention(out, g));
      ch = out;
      if (level > 0 && i == cfg.num_res_blocks) {
        b.resample = register_module("up" + std::to_string(level) + "_resample", conv(ch, ch, 3));
        res *= 2;
      }
      up_.push_back(b);
    }
  }
  norm_out = register_module("norm_out", group_norm(g, ch));
  conv_out = register_module("conv_out", conv(ch, cfg.in_channels, 3));
  // Registered last, so that the other weights draw the same initial values as an unconditional
  // model of the same seed. Initialised N(0, 1), as improved-diffusion's label embedding.
  if (cfg.num_classes > 0) class_emb = register_module("class_emb", nn::Embedding(cfg.num_classes + 1, temb_dim_));
}

torch::Tensor UNetImpl::forward(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& labels,
                                const torch::Tensor& dropout_keys) {
  auto temb = temb2(torch::silu(temb1(timestep_embedding(t, cfg_.base_channels))));
  if (class_emb) {
    temb = temb + class_emb(labels.defined() ? labels
                                             : torch::full({x.size(0)}, cfg_.num_classes,
                                                           torch::TensorOptions().dtype(torch::kLong).device(x.device())));
  } else if (labels.defined()) {
    throw Error("class labels given to an unconditional U-Net (model.num_classes: 0)");
  }
  std::vector<torch::Tensor> skips;
  auto h = conv_in(x);
  skips.push_back(h);
  for (auto& b : down_) {
    if (b.res) {
      h = b.res(h, temb, dropout_keys);
      if (b.attn) h = b.attn(h);
    } else {
      h = b.resample(h);
    }
    skips.push_back(h);
  }
  h = mid1(h, temb, dropout_keys);
  if (mid_attn) h = mid_attn(h);
  h = mid2(h, temb, dropout_keys);
  for (auto& b : up_) {
    h = b.res(torch::cat({h, skips.back()}, 1), temb, dropout_keys);
    skips.pop_back();
    if (b.attn) h = b.attn(h);
    if (b.resample) {
      h = b.resample(upsample2(h));
    }
  }
  // fp32 out, whatever autocast computed inside: the loss and the samplers work in fp32.
  return conv_out(torch::silu(norm_fp32(norm_out, h))).to(torch::kFloat32);
}

// Walks the blocks in the order of forward(), tracking the resolution.
double UNetImpl::forward_flops() const {
  int res = cfg_.image_size;
  double f = linear_flops(temb1) + linear_flops(temb2) + conv_flops(conv_in, res);
  for (const auto& b : down_) {
    if (b.res) {
      f += b.res->flops(res);
      if (b.attn) f += b.attn->flops(res);
    } else {
      res /= 2;
      f += conv_flops(b.resample, res);
    }
  }
  f += mid1->flops(res) + (mid_attn ? mid_attn->flops(res) : 0.0) + mid2->flops(res);
  for (const auto& b : up_) {
    f += b.res->flops(res);
    if (b.attn) f += b.attn->flops(res);
    if (b.resample) {
      res *= 2;
      f += conv_flops(b.resample, res);
    }
  }
  return f + conv_flops(conv_out, res);
}

std::int64_t UNetImpl::parameter_count() const {
  std::int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

}  // namespace ddpm::model
