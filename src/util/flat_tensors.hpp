// Tensors laid end to end in one buffer, each a view of its stretch: how parameters, their
// gradients, the optimizer's moments and the EMA each live in a single tensor, so that an update or
// an all-reduce over a whole model is one operation (and one kernel on a GPU) instead of one per
// parameter, with nothing copied in or out.
#pragma once

#include <torch/torch.h>

#include <vector>

namespace ddpm::util {

// Views of `flat` shaped and strided like `like` (each without gaps: contiguous, or channels-last),
// end to end in order from element 0.
std::vector<torch::Tensor> views_of(const torch::Tensor& flat, const std::vector<torch::Tensor>& like);

// The one buffer that `tensors` are views of, end to end in order. When they are not yet, their
// values move into a new buffer and each tensor becomes a view of it (set_data: the same tensor
// objects, so modules, autograd and hooks see the move). All must share dtype and device.
torch::Tensor flat_buffer(std::vector<torch::Tensor> tensors);

}  // namespace ddpm::util
