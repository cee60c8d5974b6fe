#include "model/dropout.hpp"

#include <torch/torch.h>

#include <cmath>

#include "util/row_keys.hpp"

namespace ddpm::model {
namespace {

constexpr std::int64_t kMask32 = std::int64_t{0xFFFFFFFF};

// A 32-bit integer hash (xorshift-multiply rounds) on int64 tensors holding values below 2^32.
// The multipliers are odd and below 2^31, so no product leaves int64's range (signed overflow
// would be undefined behaviour in the kernels); the shifts are of non-negative values, so logical.
torch::Tensor hash32(torch::Tensor h) {
  h = h.bitwise_xor(h.bitwise_right_shift(16));
  h = h.mul_(std::int64_t{0x7feb352d}).bitwise_and_(kMask32);
  h = h.bitwise_xor_(h.bitwise_right_shift(15));
  h = h.mul_(std::int64_t{0x68e31da5}).bitwise_and_(kMask32);
  return h.bitwise_xor_(h.bitwise_right_shift(16));
}

std::uint64_t hash_layer(std::int64_t layer) {
  return splitmix64(static_cast<std::uint64_t>(layer) + 0x51ED27ull) & kMask32;
}

}  // namespace

torch::Tensor dropout_row_keys(std::uint64_t seed, std::int64_t step, std::int64_t begin, std::int64_t end,
                               torch::Device device) {
  return row_keys(Stream(seed, Purpose::Dropout), step, begin, end, device);
}

torch::Tensor keyed_dropout(const torch::Tensor& x, double p, const torch::Tensor& keys, std::int64_t layer,
                            bool training) {
  if (!training || p <= 0) return x;
  torch::Tensor keep;
  {
    torch::NoGradGuard no_grad;
    const auto rows = x.size(0), n = x.numel() / rows;
    const auto opts = torch::TensorOptions().dtype(torch::kInt64).device(x.device());
    auto row_keys = keys.defined() ? keys.to(opts) : torch::randint(0, kMask32 + 1, {rows}, opts);
    TORCH_CHECK(row_keys.numel() == rows, "keyed_dropout: ", row_keys.numel(), " keys for ", rows, " rows");
    auto k = hash32(row_keys.bitwise_xor(static_cast<std::int64_t>(hash_layer(layer))));
    auto element = hash32(torch::arange(n, opts));
    auto h = hash32(element.unsqueeze(0).bitwise_xor(k.unsqueeze(1)));
    // P(h < threshold) = threshold / 2^32 = p up to rounding.
    const auto threshold = static_cast<std::int64_t>(std::llround(p * 4294967296.0));
    keep = h.ge(threshold).to(x.scalar_type()).mul_(1.0 / (1.0 - p)).view(x.sizes());
  }
  return x * keep;
}

}  // namespace ddpm::model
