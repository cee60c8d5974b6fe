#include "data/idx.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <fstream>

#include "util/error.hpp"

namespace ddpm::data {
namespace {

constexpr const char* kFix = " — run launch/setup.sh to fetch and verify the data again";

std::uint32_t big_endian(const unsigned char* p) {
  return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) |
         std::uint32_t(p[3]);
}

}  // namespace

torch::Tensor read_idx(const std::string& path, int rank) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw Error(path + ": cannot open the file" + kFix);
  const auto file_size = static_cast<std::int64_t>(in.tellg());
  in.seekg(0);

  const std::int64_t header_size = 4 + 4 * static_cast<std::int64_t>(rank);
  std::array<unsigned char, 4 + 4 * 4> header{};
  in.read(reinterpret_cast<char*>(header.data()), std::min(file_size, header_size));

  // Magic: two zero bytes, the element type (0x08 = unsigned byte), the number of dimensions.
  if (file_size >= 4 && (header[0] != 0 || header[1] != 0 || header[2] != 0x08 || header[3] != rank)) {
    char expected[16], found[16];
    std::snprintf(expected, sizeof expected, "000008%02x", rank);
    std::snprintf(found, sizeof found, "%02x%02x%02x%02x", header[0], header[1], header[2], header[3]);
    throw Error(path + ": not an unsigned-byte IDX file with " + std::to_string(rank) +
                " dimensions (magic " + expected + " expected, found " + found + ")" + kFix);
  }
  if (file_size < header_size)
    throw Error(path + ": expected an IDX header of " + std::to_string(header_size) +
                " bytes, found a file of " + std::to_string(file_size) + " bytes" + kFix);
  std::vector<std::int64_t> dims;
  std::int64_t count = 1;
  for (int d = 0; d < rank; ++d) {
    const auto n = static_cast<std::int64_t>(big_endian(&header[4 + 4 * d]));
    if (n == 0 || n > (std::int64_t(1) << 31))
      throw Error(path + ": dimension " + std::to_string(d) + " is " + std::to_string(n) +
                  ", which no MNIST-format file has" + kFix);
    dims.push_back(n);
    count *= n;
  }
  if (file_size != header_size + count) {
    std::string shape;
    for (auto n : dims) shape += (shape.empty() ? "" : "x") + std::to_string(n);
    throw Error(path + ": expected " + std::to_string(header_size + count) + " bytes for shape " +
                shape + ", found " + std::to_string(file_size) + kFix);
  }
  auto out = torch::empty(dims, torch::kUInt8);
  in.read(reinterpret_cast<char*>(out.data_ptr<std::uint8_t>()), count);
  if (!in) throw Error(path + ": read failed after the header" + kFix);
  return out;
}

}  // namespace ddpm::data
