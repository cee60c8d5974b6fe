#include "io/png.hpp"

#include <png.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include "util/error.hpp"

namespace ddpm::io {

torch::Tensor make_grid(const torch::Tensor& images_u8, int columns, int scale, int pad) {
  const auto big = images_u8.repeat_interleave(scale, 1).repeat_interleave(scale, 2);
  const auto n = big.size(0), h = big.size(1), w = big.size(2);
  const auto rows = (n + columns - 1) / columns;
  auto grid = torch::full({rows * (h + pad) + pad, columns * (w + pad) + pad}, kBorderGrey, torch::kUInt8);
  for (std::int64_t i = 0; i < n; ++i) {
    const auto r = i / columns, c = i % columns;
    grid.slice(0, pad + r * (h + pad), pad + r * (h + pad) + h)
        .slice(1, pad + c * (w + pad), pad + c * (w + pad) + w)
        .copy_(big[i]);
  }
  return grid;
}

void write_png(const std::string& path, const torch::Tensor& image_u8) {
  auto img = image_u8.contiguous();
  TORCH_CHECK(img.dim() == 2 && img.scalar_type() == torch::kUInt8, "write_png expects uint8 [H, W]");
  std::error_code ec;
  const auto dir = std::filesystem::path(path).parent_path();
  if (!dir.empty()) std::filesystem::create_directories(dir, ec);
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(tmp.c_str(), "wb"), &std::fclose);
  if (!f) throw Error(path + ": cannot write PNG: " + std::strerror(errno));
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    f.reset();
    std::filesystem::remove(tmp, ec);
    throw Error(path + ": libpng failed while writing");
  }
  png_init_io(png, f.get());
  png_set_IHDR(png, info, static_cast<png_uint_32>(img.size(1)), static_cast<png_uint_32>(img.size(0)), 8,
               PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  auto* data = img.data_ptr<std::uint8_t>();
  for (std::int64_t r = 0; r < img.size(0); ++r) png_write_row(png, data + r * img.size(1));
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  if (std::fflush(f.get()) != 0 || std::fclose(f.release()) != 0) {
    std::filesystem::remove(tmp, ec);
    throw Error(path + ": cannot write PNG: " + std::strerror(errno));
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw Error(path + ": cannot rename the PNG into place: " + ec.message());
}

}  // namespace ddpm::io
