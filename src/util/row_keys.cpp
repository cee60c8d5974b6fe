#include "util/row_keys.hpp"

#include <torch/torch.h>

#include <vector>

namespace ddpm {

torch::Tensor row_keys(const Stream& stream, std::int64_t step, std::int64_t begin, std::int64_t end,
                       torch::Device device) {
  std::vector<std::int64_t> keys;
  keys.reserve(static_cast<std::size_t>(end - begin));
  for (std::int64_t row = begin; row < end; ++row)
    keys.push_back(static_cast<std::int64_t>(
        stream.key({static_cast<std::uint64_t>(step), static_cast<std::uint64_t>(row)}) & 0xFFFFFFFFull));
  auto host = torch::tensor(keys, torch::kInt64);
  // From pinned memory the upload is queued behind the step's work; from pageable memory it would
  // first wait for the device to finish everything queued.
  return device.is_cuda() ? host.pin_memory().to(device, /*non_blocking=*/true) : host;
}

}  // namespace ddpm
