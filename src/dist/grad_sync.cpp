#include "dist/grad_sync.hpp"

#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <chrono>
#include <functional>

#include "util/flat_tensors.hpp"

namespace ddpm::dist {

namespace {

// Runs after autograd has added a backward's contribution to a parameter's gradient.
class AfterAccumulation : public torch::autograd::FunctionPostHook {
 public:
  explicit AfterAccumulation(std::function<void()> fn) : fn_(std::move(fn)) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list& /*inputs*/) override {
    fn_();
    return outputs;
  }

 private:
  std::function<void()> fn_;
};

}  // namespace

GradSync::GradSync(Communicator& comm, std::vector<torch::Tensor> params, GradSyncOptions options)
    : comm_(comm), params_(std::move(params)), options_(options), self_(std::make_shared<GradSync*>(this)) {
  TORCH_CHECK(!params_.empty(), "GradSync: no parameters");
  std::int64_t total = 0;
  for (const auto& p : params_) {
    TORCH_CHECK(p.scalar_type() == params_.front().scalar_type() && p.device() == params_.front().device(),
                "GradSync: the parameters differ in dtype or device; one gradient buffer holds them all");
    total += p.numel();
  }
  grads_ = torch::zeros({total}, params_.front().options().requires_grad(false));
  grad_views_ = util::views_of(grads_, params_);
  bucket_of_.resize(params_.size());
  arrived_.assign(params_.size(), 0);
  // Buckets from the last parameter backwards; each is the stretch of grads_ from its first
  // parameter in registration order (its last one added) to the end of the previous bucket.
  double limit = options_.first_bucket_mb * 1024 * 1024;
  double filled = 0;
  std::int64_t end = total, begin = total;
  for (std::size_t k = params_.size(); k-- > 0;) {
    const auto& p = params_[k];
    const double bytes = static_cast<double>(p.numel() * p.element_size());
    if (buckets_.empty() || filled + bytes > limit) {
      if (!buckets_.empty()) {
        buckets_.back().buffer = grads_.narrow(0, begin, end - begin);
        end = begin;
        limit = options_.bucket_mb * 1024 * 1024;
      }
      buckets_.emplace_back();
      filled = 0;
    }
    bucket_of_[k] = buckets_.size() - 1;
    ++buckets_.back().size;
    begin -= p.numel();
    filled += bytes;
  }
  buckets_.back().buffer = grads_.narrow(0, begin, end - begin);
  for (std::size_t k = 0; k < params_.size(); ++k) params_[k].mutable_grad() = grad_views_[k];
  if (!options_.overlap) return;
  std::weak_ptr<GradSync*> weak = self_;
  for (std::size_t k = 0; k < params_.size(); ++k) {
    auto acc = torch::autograd::impl::grad_accumulator(params_[k]);
    TORCH_CHECK(acc, "GradSync: parameter ", k, " does not require a gradient");
    acc->add_post_hook(std::make_unique<AfterAccumulation>([weak, k] {
      if (auto self = weak.lock()) (*self)->on_gradient(k);
    }));
    accumulators_.push_back(std::move(acc));
  }
}

GradSync::~GradSync() = default;

void GradSync::prepare(bool armed) {
  for (std::size_t k = 0; k < params_.size(); ++k) {
    const auto& g = params_[k].grad();
    if (!g.defined() || !g.is_same(grad_views_[k])) params_[k].mutable_grad() = grad_views_[k];
  }
  grads_.zero_();
  for (auto& b : buckets_) {
    b.ready = 0;
    b.work.reset();
  }
  std::fill(arrived_.begin(), arrived_.end(), 0);
  next_launch_ = 0;
  armed_ = armed;
}

void GradSync::on_gradient(std::size_t param) {
  if (!armed_ || arrived_[param]) return;
  arrived_[param] = 1;
  ++buckets_[bucket_of_[param]].ready;
  launch_ready_buckets();
  comm_.progress();
}

void GradSync::launch_ready_buckets() {
  while (next_launch_ < buckets_.size() && buckets_[next_launch_].ready == buckets_[next_launch_].size) {
    auto& b = buckets_[next_launch_++];
    b.work = comm_.allreduce_sum_async(b.buffer);
  }
}

void GradSync::finish() {
  torch::NoGradGuard no_grad;
  armed_ = false;
  // Buckets with gradients that no hook counted: all of them with overlap off, those of unused
  // parameters otherwise (their stretch stays zero, as in a model where they do not appear).
  comm_.group_begin();
  for (auto& b : buckets_) b.ready = b.size;
  launch_ready_buckets();
  comm_.group_end();

  const auto start = std::chrono::steady_clock::now();
  for (auto& b : buckets_) b.work->wait();
  wait_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  grads_.mul_(1.0 / comm_.size());
}

bool overlap_in_backward(bool asked, bool graphs, const torch::Device& device, const Communicator& comm) {
  return asked && !graphs && (device.is_cpu() || comm.launches_from_any_thread());
}

void broadcast_module(Communicator& comm, torch::nn::Module& module, int root) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters()) comm.broadcast(p, root);
  for (auto& b : module.buffers()) comm.broadcast(b, root);
}

}  // namespace ddpm::dist
