#include "model/autoencoder.hpp"

#include <cmath>

#include "model/layers.hpp"
#include "util/error.hpp"

namespace ddpm::model {

torch::Tensor Posterior::std() const { return torch::exp(0.5 * logvar); }

torch::Tensor Posterior::sample(const torch::Tensor& noise) const { return mean + std() * noise; }

torch::Tensor Posterior::kl() const {
  return 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar).flatten(1).sum(1);
}

AutoencoderImpl::AutoencoderImpl(const config::AutoencoderConfig& cfg, int image_size, int in_channels)
    : cfg_(cfg), image_size_(image_size) {
  const int levels = static_cast<int>(cfg.channel_mult.size());
  const int factor = 1 << (levels - 1);
  if (levels < 1 || image_size % factor != 0)
    throw Error("autoencoder.channel_mult: " + std::to_string(levels) + " level(s) halve the size " +
                std::to_string(levels - 1) + " time(s), which " + std::to_string(image_size) +
                " does not allow; use fewer levels");
  latent_size_ = image_size / factor;
  const int base = cfg.base_channels, g = cfg.groups;
  // No time input (temb_dim 0), no dropout; layer numbers are unused without dropout.
  auto block = [&](int in, int out) { return ResBlock(in, out, 0, g, 0.0, 0); };

  enc_in = register_module("enc_in", conv(in_channels, base * cfg.channel_mult[0], 3));
  int ch = base * cfg.channel_mult[0];
  for (int level = 0; level < levels; ++level) {
    Level l;
    const int out = base * cfg.channel_mult[level];
    for (int i = 0; i < cfg.num_res_blocks; ++i) {
      l.blocks.push_back(register_module("down" + std::to_string(level) + "_" + std::to_string(i), block(ch, out)));
      ch = out;
    }
    if (level + 1 < levels) l.resample = register_module("down" + std::to_string(level) + "_resample", conv(ch, ch, 3, 2));
    down_.push_back(std::move(l));
  }
  enc_mid = register_module("enc_mid", block(ch, ch));
  enc_norm = register_module("enc_norm", group_norm(g, ch));
  enc_out = register_module("enc_out", conv(ch, 2 * cfg.latent_channels, 3));

  dec_in = register_module("dec_in", conv(cfg.latent_channels, ch, 3));
  dec_mid = register_module("dec_mid", block(ch, ch));
  for (int level = levels - 1; level >= 0; --level) {
    Level l;
    const int out = base * cfg.channel_mult[level];
    for (int i = 0; i < cfg.num_res_blocks; ++i) {
      l.blocks.push_back(register_module("up" + std::to_string(level) + "_" + std::to_string(i), block(ch, out)));
      ch = out;
    }
    if (level > 0) l.resample = register_module("up" + std::to_string(level) + "_resample", conv(ch, ch, 3));
    up_.push_back(std::move(l));
  }
  dec_norm = register_module("dec_norm", group_norm(g, ch));
  dec_out = register_module("dec_out", conv(ch, in_channels, 3));
}

Posterior AutoencoderImpl::encode(const torch::Tensor& x) {
  auto h = enc_in(x);
  for (auto& l : down_) {
    for (auto& b : l.blocks) h = b->forward(h, {}, {});
    if (l.resample) h = l.resample(h);
  }
  h = enc_mid->forward(h, {}, {});
  // fp32 moments whatever autocast computed inside; the log-variance is clamped as in Rombach et
  // al., so that an untrained encoder cannot overflow exp().
  auto moments = enc_out(torch::silu(norm_fp32(enc_norm, h))).to(torch::kFloat32);
  auto parts = moments.chunk(2, 1);
  return {parts[0], parts[1].clamp(-30.0, 20.0)};
}

torch::Tensor AutoencoderImpl::decode(const torch::Tensor& z) {
  auto h = dec_mid->forward(dec_in(z), {}, {});
  for (auto& l : up_) {
    for (auto& b : l.blocks) h = b->forward(h, {}, {});
    if (l.resample) h = l.resample(upsample2(h));
  }
  return dec_out(torch::silu(norm_fp32(dec_norm, h))).to(torch::kFloat32);
}

std::vector<std::int64_t> AutoencoderImpl::latent_shape() const {
  return {cfg_.latent_channels, latent_size_, latent_size_};
}

std::int64_t AutoencoderImpl::parameter_count() const {
  std::int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

double AutoencoderImpl::encode_flops() const {
  int res = image_size_;
  double f = conv_flops(enc_in, res);
  for (const auto& l : down_) {
    for (const auto& b : l.blocks) f += b->flops(res);
    if (l.resample) {
      res /= 2;
      f += conv_flops(l.resample, res);
    }
  }
  return f + enc_mid->flops(res) + conv_flops(enc_out, res);
}

double AutoencoderImpl::decode_flops() const {
  int res = latent_size_;
  double f = conv_flops(dec_in, res) + dec_mid->flops(res);
  for (const auto& l : up_) {
    for (const auto& b : l.blocks) f += b->flops(res);
    if (l.resample) {
      res *= 2;
      f += conv_flops(l.resample, res);
    }
  }
  return f + conv_flops(dec_out, res);
}

AutoencoderLoss autoencoder_loss(Autoencoder& ae, const torch::Tensor& x, const torch::Tensor& noise, double kl_weight) {
  const auto q = ae->encode(x);
  const auto recon = ae->decode(q.sample(noise));
  const double pixels = double(x[0].numel());
  const auto sse = (recon - x.to(torch::kFloat32)).square().flatten(1).sum(1);
  const auto kl = q.kl();
  return {((sse + kl_weight * kl) / pixels).mean(), (sse / pixels).mean(), kl.mean()};
}

LatentMoments& LatentMoments::operator+=(const LatentMoments& o) {
  count += o.count;
  sum += o.sum;
  sum_sq += o.sum_sq;
  return *this;
}

double LatentMoments::mean() const { return sum / count; }

double LatentMoments::std() const {
  const double m = mean();
  return std::sqrt(std::max(0.0, sum_sq / count - m * m));
}

LatentMoments latent_moments(const Posterior& q) { return latent_moments(q.mean, q.std()); }

LatentMoments latent_moments(const torch::Tensor& mean, const torch::Tensor& std) {
  const auto m = mean.to(torch::kFloat64);
  return {double(m.numel()), m.sum().item<double>(), (m.square() + std.to(torch::kFloat64).square()).sum().item<double>()};
}

}  // namespace ddpm::model
