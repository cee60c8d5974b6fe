// Dropout whose mask is a pure function of (row key, layer, element): a counter-based hash
// computed with tensor ops on the input's device, not a draw from a generator.
//
// The trainer gives each row of the global batch the key Stream(seed, Dropout).key({step, row}), so
// a row's masks are the same whichever rank computes it, however the batch is split, on a resumed
// run, and inside a captured CUDA graph (the keys are one more input tensor of the graph). No
// generator state is read or advanced.
#pragma once

#include <torch/types.h>

#include <cstdint>

namespace ddpm::model {

// Keys of rows [begin, end) of global step `step`, as an int64 tensor on `device`.
torch::Tensor dropout_row_keys(std::uint64_t seed, std::int64_t step, std::int64_t begin, std::int64_t end,
                               torch::Device device);

// Inverted dropout of x [rows, ...]: each element is zeroed with probability p (to within 2^-32)
// and the rest scaled by 1 / (1 - p); `keys` [rows] names each row's masks, `layer` tells apart the
// layers of one network. Without keys (a module used outside the trainer) they are drawn from
// the default generator. The identity while not `training`, or for p = 0.
torch::Tensor keyed_dropout(const torch::Tensor& x, double p, const torch::Tensor& keys, std::int64_t layer,
                            bool training);

}  // namespace ddpm::model
