#include "eval/distributed_sampling.hpp"

#include <spdlog/spdlog.h>

#include "util/share.hpp"

namespace ddpm::eval {

torch::Tensor sample_local(dist::Communicator& comm, const model::Denoiser& denoise, const model::Diffusion& diffusion,
                           const config::Config& cfg, const torch::Device& device,
                           const model::StepCallback& on_step, const model::SampleSpace* space) {
  const auto [first, count] = batch_share(cfg.sample.num_samples, cfg.sample.batch_size, comm.rank(), comm.size());
  // Work is split in whole batches; fewer batches than ranks leaves ranks idle, which is allowed.
  const std::int64_t batches = batch_count(cfg.sample.num_samples, cfg.sample.batch_size);
  if (comm.rank() == 0 && batches < comm.size())
    spdlog::warn("sample.num_samples = {} in batches of sample.batch_size = {} makes {} batch(es) for {} ranks: {} "
                 "rank(s) wait idle; start fewer ranks or lower sample.batch_size to spread the work",
                 cfg.sample.num_samples, cfg.sample.batch_size, batches, comm.size(), comm.size() - batches);
  const auto shape = space ? space->shape()
                           : std::vector<std::int64_t>{cfg.model.in_channels, cfg.model.image_size, cfg.model.image_size};
  if (count == 0) return torch::empty({0, cfg.model.in_channels, cfg.model.image_size, cfg.model.image_size});
  const auto labels = model::sample_labels(cfg.sample.labels, cfg.model.num_classes, cfg.run.seed, first, count);
  model::SampleRequest request{first, count, cfg.run.seed, labels};
  const bool latent = space && space->latent();
  request.clamp = !latent;
  const auto x = model::sample_images(denoise, diffusion, cfg.sample, shape, request, device, on_step);
  return latent ? space->to_images(x.to(device), cfg.sample.batch_size).cpu() : x;
}

torch::Tensor sample_distributed(dist::Communicator& comm, const model::Denoiser& denoise,
                                 const model::Diffusion& diffusion, const config::Config& cfg,
                                 const torch::Device& device, const model::StepCallback& on_step,
                                 const model::SampleSpace* space) {
  // Gathered on the host, in rank order, which is index order.
  return comm.gatherv(sample_local(comm, denoise, diffusion, cfg, device, on_step, space).cpu().contiguous(), 0);
}

}  // namespace ddpm::eval
