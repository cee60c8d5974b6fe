// Label-preserving augmentation of training images (the evaluation classifier's): each row is
// shifted and possibly mirrored as its key says, with tensor ops on the images' device.
#pragma once

#include <torch/types.h>

#include <string>

namespace ddpm::data {

// The largest shift, in pixels, each way.
constexpr std::int64_t kMaxShift = 2;

// images: uint8 [B, H, W]; keys: int64 [B] below 2^32 (util/row_keys.hpp). `mode`: "none" (the
// images as they are), "shift" (each row moved by (dy, dx) in [-kMaxShift, kMaxShift]^2, the
// uncovered border black), "shift_flip" (and mirrored left-right where its key says, half the rows
// on average). The same key gives the same change whatever the batch.
torch::Tensor augment(const torch::Tensor& images, const torch::Tensor& keys, const std::string& mode);

}  // namespace ddpm::data
