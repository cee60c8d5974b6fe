#include "dist/grad_sync.hpp"

#include <chrono>

namespace ddpm::dist {

GradSync::GradSync(Communicator& comm, std::vector<torch::Tensor> params, GradSyncOptions options)
    : comm_(comm), params_(std::move(params)), options_(options), self_(std::make_shared<GradSync*>(this)) {
  bucket_of_.resize(params_.size());
  slot_of_.resize(params_.size());
  arrived_.assign(params_.size(), 0);
  double limit = options_.first_bucket_mb * 1024 * 1024;
  double filled = 0;
  std::vector<std::int64_t> numel;
  for (std::size_t k = params_.size(); k-- > 0;) {
    const auto& p = params_[k];
    const double bytes = static_cast<double>(p.numel() * p.element_size());
    const bool fits = !buckets_.empty() && filled + bytes <= limit &&
                      params_[buckets_.back().params.front()].scalar_type() == p.scalar_type();
    if (!fits) {
      if (!buckets_.empty()) limit = options_.bucket_mb * 1024 * 1024;
      buckets_.emplace_back();
      numel.push_back(0);
      filled = 0;
    }
    auto& b = buckets_.back();
    bucket_of_[k] = buckets_.size() - 1;
    slot_of_[k] = b.params.size();
    b.params.push_back(k);
    b.offsets.push_back(numel.back());
    numel.back() += p.numel();
    filled += bytes;
  }
  for (std::size_t i = 0; i < buckets_.size(); ++i)
    buckets_[i].buffer = torch::empty({numel[i]}, params_[buckets_[i].params.front()].options().requires_grad(false));
  if (!options_.overlap) return;
  std::weak_ptr<GradSync*> weak = self_;
  for (std::size_t k = 0; k < params_.size(); ++k) {
    params_[k].register_hook([weak, k](const torch::Tensor& grad) {
      if (auto self = weak.lock()) (*self)->on_gradient(k, grad);
    });
  }
}

GradSync::~GradSync() = default;

void GradSync::prepare() {
  for (auto& b : buckets_) {
    b.ready = 0;
    b.work.reset();
  }
  std::fill(arrived_.begin(), arrived_.end(), 0);
  next_launch_ = 0;
}

void GradSync::on_gradient(std::size_t param, const torch::Tensor& grad) {
  auto& b = buckets_[bucket_of_[param]];
  const auto slot = slot_of_[param];
  torch::NoGradGuard no_grad;
  b.buffer.narrow(0, b.offsets[slot], grad.numel()).view_as(grad).copy_(grad);
  if (!arrived_[param]) {
    arrived_[param] = 1;
    ++b.ready;
  }
  launch_ready_buckets();
  comm_.progress();
}

void GradSync::launch_ready_buckets() {
  while (next_launch_ < buckets_.size() && buckets_[next_launch_].ready == buckets_[next_launch_].params.size()) {
    auto& b = buckets_[next_launch_++];
    b.work = comm_.allreduce_sum_async(b.buffer);
  }
}

void GradSync::finish() {
  torch::NoGradGuard no_grad;
  // Gradients that no hook delivered: all of them with overlap off, unused parameters otherwise
  // (they count as zero, as in a model where they do not appear).
  comm_.group_begin();
  for (std::size_t k = 0; k < params_.size(); ++k) {
    if (arrived_[k]) continue;
    auto& b = buckets_[bucket_of_[k]];
    auto slice = b.buffer.narrow(0, b.offsets[slot_of_[k]], params_[k].numel());
    const auto& g = params_[k].grad();
    if (g.defined())
      slice.view_as(g).copy_(g);
    else
      slice.zero_();
    arrived_[k] = 1;
    ++b.ready;
  }
  launch_ready_buckets();
  comm_.group_end();

  const auto start = std::chrono::steady_clock::now();
  for (auto& b : buckets_) b.work->wait();
  wait_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  const double inv_world = 1.0 / comm_.size();
  for (auto& b : buckets_) {
    b.buffer.mul_(inv_world);
    for (std::size_t s = 0; s < b.params.size(); ++s) {
      auto& p = params_[b.params[s]];
      auto avg = b.buffer.narrow(0, b.offsets[s], p.numel()).view_as(p);
      if (p.grad().defined())
        p.mutable_grad().copy_(avg);
      else
        p.mutable_grad() = avg.clone();
    }
  }
}

void broadcast_module(Communicator& comm, torch::nn::Module& module, int root) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters()) comm.broadcast(p, root);
  for (auto& b : module.buffers()) comm.broadcast(b, root);
}

}  // namespace ddpm::dist
