#include "eval/sample_grid.hpp"

#include <torch/torch.h>

#include "io/png.hpp"

namespace ddpm::eval {

torch::Tensor sample_grid(const torch::Tensor& images_u8, const torch::Tensor& labels) {
  constexpr std::int64_t kColumns = 10;
  const auto asked = labels.defined() ? labels.cpu() : torch::Tensor();
  const auto classes = asked.defined() ? std::get<0>(torch::_unique(asked, /*sorted=*/true)) : torch::Tensor();
  if (!classes.defined() || classes.numel() < 2)
    return io::make_grid(images_u8.slice(0, 0, kColumns * kColumns), static_cast<int>(kColumns));
  std::vector<torch::Tensor> rows;
  for (std::int64_t k = 0; k < classes.numel(); ++k) {
    const auto idx = (asked == classes[k]).nonzero().flatten().slice(0, 0, kColumns);
    auto row = torch::zeros({kColumns, images_u8.size(1), images_u8.size(2)}, torch::kUInt8);
    row.slice(0, 0, idx.numel()).copy_(images_u8.index_select(0, idx));
    rows.push_back(row);
  }
  return io::make_grid(torch::cat(rows), static_cast<int>(kColumns));
}

}  // namespace ddpm::eval
