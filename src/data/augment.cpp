#include "data/augment.hpp"

#include <torch/torch.h>

#include "util/error.hpp"

namespace ddpm::data {

torch::Tensor augment(const torch::Tensor& images, const torch::Tensor& keys, const std::string& mode) {
  if (mode == "none") return images;
  if (mode != "shift" && mode != "shift_flip") throw Error("data::augment: unknown mode '" + mode + "'");
  TORCH_CHECK(images.dim() == 3 && keys.dim() == 1 && keys.size(0) == images.size(0),
              "data::augment: images [B, H, W] and keys [B]");
  const auto rows = images.size(0), h = images.size(1), w = images.size(2);
  const auto opts = torch::TensorOptions().dtype(torch::kInt64).device(images.device());
  const auto k = keys.to(opts);
  // Independent bits of the key: 14 for each shift (whose reduction to 2 kMaxShift + 1 values is
  // then uniform to within 2^-12), 1 for the mirror.
  const auto span = 2 * kMaxShift + 1;
  const auto dy = k.bitwise_and(0x3FFF).remainder(span).sub(kMaxShift).view({rows, 1, 1});
  const auto dx = k.bitwise_right_shift(14).bitwise_and(0x3FFF).remainder(span).sub(kMaxShift).view({rows, 1, 1});
  auto col = torch::arange(w, opts).view({1, 1, w}).expand({rows, 1, w});
  if (mode == "shift_flip") {
    const auto mirror = k.bitwise_right_shift(28).bitwise_and(1).view({rows, 1, 1}).to(torch::kBool);
    col = torch::where(mirror, (w - 1) - col, col);
  }
  // Output pixel (i, j) reads the source pixel (i - dy, col(j) - dx) of the image padded by kMaxShift.
  const auto pw = w + 2 * kMaxShift;
  const auto row = torch::arange(h, opts).view({1, h, 1});
  const auto index = (row - dy + kMaxShift) * pw + (col - dx + kMaxShift);
  const auto padded = torch::constant_pad_nd(images, {kMaxShift, kMaxShift, kMaxShift, kMaxShift}, 0);
  return padded.reshape({rows, -1}).gather(1, index.reshape({rows, -1})).view({rows, h, w});
}

}  // namespace ddpm::data
