#include "util/flat_tensors.hpp"

namespace ddpm::util {

std::vector<torch::Tensor> views_of(const torch::Tensor& flat, const std::vector<torch::Tensor>& like) {
  std::vector<torch::Tensor> out;
  out.reserve(like.size());
  std::int64_t offset = 0;
  for (const auto& t : like) {
    TORCH_CHECK(t.is_non_overlapping_and_dense(),
                "views_of: a tensor with gaps or overlaps cannot be a stretch of a buffer");
    out.push_back(flat.narrow(0, offset, t.numel()).as_strided(t.sizes(), t.strides()));
    offset += t.numel();
  }
  TORCH_CHECK(offset == flat.numel(), "views_of: the tensors hold ", offset, " values, the buffer ", flat.numel());
  return out;
}

namespace {
// The buffer when the tensors already are its consecutive views; undefined otherwise.
torch::Tensor existing_buffer(const std::vector<torch::Tensor>& tensors) {
  const auto& first = tensors.front();
  if (!first.has_storage()) return {};
  std::int64_t next = first.storage_offset();
  for (const auto& t : tensors) {
    if (!t.has_storage() || !t.is_non_overlapping_and_dense() || !t.storage().is_alias_of(first.storage()) ||
        t.storage_offset() != next)
      return {};
    next += t.numel();
  }
  return torch::empty({0}, first.options().requires_grad(false))
      .set_(first.storage(), first.storage_offset(), {next - first.storage_offset()}, {1});
}
}  // namespace

torch::Tensor flat_buffer(std::vector<torch::Tensor> tensors) {
  TORCH_CHECK(!tensors.empty(), "flat_buffer: no tensors");
  for (const auto& t : tensors)
    TORCH_CHECK(t.scalar_type() == tensors.front().scalar_type() && t.device() == tensors.front().device(),
                "flat_buffer: the tensors differ in dtype or device");
  if (auto flat = existing_buffer(tensors); flat.defined()) return flat;
  std::int64_t total = 0;
  for (const auto& t : tensors) total += t.numel();
  torch::NoGradGuard no_grad;
  auto flat = torch::empty({total}, tensors.front().options().requires_grad(false));
  const auto views = views_of(flat, tensors);
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    views[i].copy_(tensors[i]);
    tensors[i].set_data(views[i]);
  }
  return flat;
}

}  // namespace ddpm::util
