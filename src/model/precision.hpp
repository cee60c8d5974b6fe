// Mixed precision: bf16 autocast around forward passes. Matrix products and convolutions run in
// bf16; the model keeps GroupNorm, softmax and its output in fp32 (unet.cpp), the loss is taken in
// fp32, and weights, gradients, EMA and optimizer state stay fp32.
#pragma once

#include <torch/torch.h>

#include <string>

#include "model/diffusion.hpp"
#include "model/unet.hpp"

namespace ddpm::model {

// Whether `device` runs bf16 at speed: CUDA devices of compute capability 8 and above (any CUDA
// device LibTorch 2.x supports here), CPUs with AVX-512 BF16 or AMX. `why` says what is missing.
bool bf16_supported(const torch::Device& device, std::string* why = nullptr);

// Says, once per key, that `what` was asked for through `key` but cannot run (`why`), what runs
// `instead`, and the value (`off`) that silences it.
void warn_unavailable_once(const std::string& key, const std::string& what, const std::string& why,
                           const std::string& instead, const std::string& off);

// Resolves a `precision` key (fp32 | bf16 | auto) for `device`: true for bf16. Where bf16 is asked
// for but the device lacks it, warns once with the key and runs fp32. `auto` is bf16 on a CPU with
// bf16 arithmetic and fp32 elsewhere without a word: where it did not pay (CUDA at this model's
// size, CPUs that only emulate bf16) and where it did, docs/journal/performance.md.
bool resolve_bf16(const std::string& precision, const torch::Device& device, const std::string& key);

// Autocast to bf16 on `device` while alive (nothing when `enabled` is false); leaving the
// outermost scope drops the cast weights it cached.
class AutocastScope {
 public:
  AutocastScope(const torch::Device& device, bool enabled);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  c10::DeviceType type_;
  bool enabled_, previous_ = false;
};

// The U-Net as a Network for sampling: in autocast when `bf16` (its output is fp32 either way),
// replayed as CUDA graphs when `cuda_graphs` (resolve it with resolve_cuda_graphs first).
Network network(UNet& net, const torch::Device& device, bool bf16, bool cuda_graphs = false);
// Autoguidance's guide: a network with its own diffusion (its prediction may differ; both must
// outlive the denoiser).
struct GuideNet {
  UNet& net;
  const Diffusion& diffusion;
};
// The denoiser the sample section asks for: network() with sample.precision and sample.cuda_graphs
// resolved for `device`, as D of `diffusion` (which must outlive it), guided with sample.guidance:
// by `guide` when given (autoguidance), else classifier-free.
Denoiser sampling_denoiser(UNet& net, const Diffusion& diffusion, const config::SampleConfig& cfg,
                           const torch::Device& device, const GuideNet* guide = nullptr);

}  // namespace ddpm::model
