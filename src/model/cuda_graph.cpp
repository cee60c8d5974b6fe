#include "model/cuda_graph.hpp"

#include <map>

#include "model/precision.hpp"
#include "util/error.hpp"
#include "util/first_error.hpp"

#ifdef DDPM_TORCH_CUDA
#include <ATen/autocast_mode.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace ddpm::model {

bool cuda_graphs_supported(const torch::Device& device, std::string* why) {
#ifdef DDPM_TORCH_CUDA
  if (device.is_cuda()) return true;
  if (why) *why = "the run is on " + device.str() + ", and CUDA graphs need a CUDA device";
#else
  if (why) *why = "this build's LibTorch (" TORCH_VERSION ") has no CUDA";
  (void)device;
#endif
  return false;
}

bool resolve_cuda_graphs(bool asked, const torch::Device& device, const std::string& key) {
  if (!asked) return false;
  std::string why;
  if (cuda_graphs_supported(device, &why)) return true;
  warn_unavailable_once(key, "CUDA graphs", why, "running without", "false");
  return false;
}

#ifdef DDPM_TORCH_CUDA

struct CapturedGraph::Impl {
  at::cuda::CUDAGraph graph;
};

CapturedGraph::CapturedGraph(const torch::Device& device, const std::function<void()>& body, int warmup)
    : impl_(std::make_unique<Impl>()) {
  TORCH_CHECK(device.is_cuda(), "CapturedGraph needs a CUDA device, got ", device.str());
  const bool cache = at::autocast::is_autocast_cache_enabled();
  at::autocast::set_autocast_cache_enabled(false);
  struct RestoreCache {
    bool on;
    ~RestoreCache() { at::autocast::set_autocast_cache_enabled(on); }
  } restore{cache};
  // Capture must not run on the legacy default stream; the side stream starts after all work
  // queued so far and the current stream resumes after the capture.
  torch::cuda::synchronize(device.index());
  {
    c10::cuda::CUDAStreamGuard guard(c10::cuda::getStreamFromPool(false, device.index()));
    for (int i = 0; i < warmup; ++i) body();
    impl_->graph.capture_begin();
    // A body that throws leaves an invalid capture, whose end fails too: the body's error is the one to see.
    util::on_error_cleanup(body, [this] { impl_->graph.capture_end(); });
    impl_->graph.capture_end();
  }
  torch::cuda::synchronize(device.index());
}

void CapturedGraph::replay() { impl_->graph.replay(); }

#else

struct CapturedGraph::Impl {};

CapturedGraph::CapturedGraph(const torch::Device& device, const std::function<void()>&, int) {
  throw Error("CUDA graphs on " + device.str() + ": this build's LibTorch (" TORCH_VERSION ") has no CUDA");
}

void CapturedGraph::replay() {}

#endif

CapturedGraph::~CapturedGraph() = default;

Network graphed_network(Network plain, const torch::Device& device) {
  struct Captured {
    torch::Tensor x, t, labels, out;
    std::unique_ptr<CapturedGraph> graph;
  };
  auto graphs = std::make_shared<std::map<std::pair<std::int64_t, bool>, Captured>>();
  return [plain = std::move(plain), device, graphs](const torch::Tensor& x, const torch::Tensor& t,
                                                    const torch::Tensor& labels) {
    const std::pair<std::int64_t, bool> key{x.size(0), labels.defined()};
    auto it = graphs->find(key);
    if (it == graphs->end()) {
      it = graphs->emplace(key, Captured{x.clone(), t.clone(), labels.defined() ? labels.clone() : labels, {}, nullptr})
               .first;
      auto& c = it->second;
      c.graph = std::make_unique<CapturedGraph>(device, [&c, &plain] { c.out = plain(c.x, c.t, c.labels); });
    }
    auto& c = it->second;
    c.x.copy_(x);
    c.t.copy_(t);
    if (key.second) c.labels.copy_(labels);
    c.graph->replay();
    return c.out.clone();
  };
}

}  // namespace ddpm::model
