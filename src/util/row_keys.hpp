// Per-row keys of a global batch: what keyed randomness inside a step (dropout masks, data
// augmentation) is drawn from, so that a row's draws do not depend on which rank computes it.
#pragma once

#include <torch/types.h>

#include <cstdint>

#include "util/rng.hpp"

namespace ddpm {

// stream.key({step, row}) for rows [begin, end) of global step `step`, kept to its low 32 bits (the
// tensor hashes that consume them work below 2^32), as an int64 tensor on `device`.
torch::Tensor row_keys(const Stream& stream, std::int64_t step, std::int64_t begin, std::int64_t end,
                       torch::Device device);

}  // namespace ddpm
