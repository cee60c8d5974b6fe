// CUDA graphs: a piece of GPU work on fixed tensors, captured once and replayed with one launch.
// Small U-Net steps are launch-bound on a large GPU (hundreds of kernels of microseconds each);
// a replay removes the per-kernel host cost. Every use has a plain path beside it.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>

#include "model/diffusion.hpp"

namespace ddpm::model {

// Whether this build and `device` can capture CUDA graphs; `why` says what is missing.
bool cuda_graphs_supported(const torch::Device& device, std::string* why = nullptr);

// Resolves a `cuda_graphs` key for `device`: where graphs are asked for but cannot run, warns
// once with the key and runs without them.
bool resolve_cuda_graphs(bool asked, const torch::Device& device, const std::string& key);

// `body` reads and writes only tensors that outlive this object. It runs `warmup` times on a side
// stream (lazy allocations, library handles), then once under capture; replay() runs the captured
// kernels again on the current stream. Autocast's weight-cast cache is off during capture, since
// cached casts would be freed behind the graph's back.
class CapturedGraph {
 public:
  CapturedGraph(const torch::Device& device, const std::function<void()>& body, int warmup = 3);
  ~CapturedGraph();
  CapturedGraph(const CapturedGraph&) = delete;
  CapturedGraph& operator=(const CapturedGraph&) = delete;
  void replay();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// `plain` replayed as one graph per batch size (and per presence of labels): inputs are copied
// into fixed buffers, the output is copied out of the graph's. Each new shape costs one capture.
Network graphed_network(Network plain, const torch::Device& device);

}  // namespace ddpm::model
