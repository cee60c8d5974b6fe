// Reader for the IDX format of the original MNIST files (big-endian header, then raw bytes).
#pragma once

#include <torch/types.h>

#include <string>

namespace ddpm::data {

// Reads an unsigned-byte IDX file with `rank` dimensions (3 for images, 1 for labels) into a
// uint8 tensor; where `path` is missing, reads `path`.gz through zlib. Checks the magic number,
// the element type, the dimensions and the file size, and
// throws ddpm::Error naming the file, what was expected, what was found, and the fix.
torch::Tensor read_idx(const std::string& path, int rank);

}  // namespace ddpm::data
