#include "data/idx.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <vector>

#include <zlib.h>

#include "util/error.hpp"

namespace ddpm::data {
namespace {

constexpr const char* kFix = " — run launch/setup.sh CONFIG to fetch and verify the data set the configuration names";

// Reads `path`, or `path`.gz decompressed (Debian's data set packages ship gzipped IDX files);
// returns the name of the file read, for messages.
std::string read_file(const std::string& path, std::vector<unsigned char>& bytes) {
  if (std::ifstream in{path, std::ios::binary | std::ios::ate}) {
    bytes.resize(static_cast<std::size_t>(in.tellg()));
    in.seekg(0);
    in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    if (!in) throw Error(path + ": read failed" + kFix);
    return path;
  }
  const std::string gz = path + ".gz";
  gzFile f = gzopen(gz.c_str(), "rb");
  if (!f) throw Error(path + ": cannot open the file (nor " + gz + ")" + kFix);
  std::array<unsigned char, 1 << 16> chunk;
  int n = 0;
  while ((n = gzread(f, chunk.data(), chunk.size())) > 0) bytes.insert(bytes.end(), chunk.begin(), chunk.begin() + n);
  int code = Z_OK;
  const std::string why = n < 0 ? gzerror(f, &code) : "";
  gzclose(f);
  if (n < 0) throw Error(gz + ": not a valid gzip file (" + why + ")" + kFix);
  return gz;
}

std::uint32_t big_endian(const unsigned char* p) {
  return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) |
         std::uint32_t(p[3]);
}

}  // namespace

torch::Tensor read_idx(const std::string& path, int rank) {
  std::vector<unsigned char> bytes;
  const std::string name = read_file(path, bytes);
  const auto file_size = static_cast<std::int64_t>(bytes.size());
  const std::int64_t header_size = 4 + 4 * static_cast<std::int64_t>(rank);
  std::array<unsigned char, 4 + 4 * 4> header{};
  std::copy_n(bytes.begin(), std::min(file_size, header_size), header.begin());

  // Magic: two zero bytes, the element type (0x08 = unsigned byte), the number of dimensions.
  if (file_size >= 4 && (header[0] != 0 || header[1] != 0 || header[2] != 0x08 || header[3] != rank)) {
    char expected[16], found[16];
    std::snprintf(expected, sizeof expected, "000008%02x", rank);
    std::snprintf(found, sizeof found, "%02x%02x%02x%02x", header[0], header[1], header[2], header[3]);
    throw Error(name + ": not an unsigned-byte IDX file with " + std::to_string(rank) +
                " dimensions (magic " + expected + " expected, found " + found + ")" + kFix);
  }
  if (file_size < header_size)
    throw Error(name + ": expected an IDX header of " + std::to_string(header_size) +
                " bytes, found a file of " + std::to_string(file_size) + " bytes" + kFix);
  std::vector<std::int64_t> dims;
  std::int64_t count = 1;
  for (int d = 0; d < rank; ++d) {
    const auto n = static_cast<std::int64_t>(big_endian(&header[4 + 4 * d]));
    if (n == 0 || n > (std::int64_t(1) << 31))
      throw Error(name + ": dimension " + std::to_string(d) + " is " + std::to_string(n) +
                  ", which no MNIST-format file has" + kFix);
    dims.push_back(n);
    count *= n;
  }
  if (file_size != header_size + count) {
    std::string shape;
    for (auto n : dims) shape += (shape.empty() ? "" : "x") + std::to_string(n);
    throw Error(name + ": expected " + std::to_string(header_size + count) + " bytes for shape " + shape +
                ", found " + std::to_string(file_size) + kFix);
  }
  auto out = torch::empty(dims, torch::kUInt8);
  std::copy_n(bytes.begin() + header_size, count, out.data_ptr<std::uint8_t>());
  return out;
}

}  // namespace ddpm::data
