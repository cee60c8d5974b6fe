// The differences between LibTorch 1.13 (Debian, CPU) and 2.x (CUDA machines), in one place.
#pragma once

#include <torch/torch.h>

#include <sstream>
#include <type_traits>

namespace ddpm::compat {

// The key of a parameter in an optimizer's state map: a string of the TensorImpl address in
// 1.13, the address itself in 2.x.
template <class Optimizer>
auto optimizer_state_key(const Optimizer& opt, const torch::Tensor& p) {
  using Key = typename std::decay_t<decltype(opt.state())>::key_type;
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream s;
    s << p.unsafeGetTensorImpl();
    return s.str();
  } else {
    return static_cast<Key>(p.unsafeGetTensorImpl());
  }
}

}  // namespace ddpm::compat
