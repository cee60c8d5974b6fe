#include "eval/posthoc_ema.hpp"

#include <fmt/format.h>

#include "model/power_ema.hpp"
#include "util/error.hpp"

namespace ddpm::eval {
namespace {
io::Named parameters(torch::nn::Module& net) {
  io::Named params;
  for (const auto& p : net.named_parameters()) params.emplace_back(p.key(), p.value());
  return params;
}
}  // namespace

std::string PosthocEma::describe() const {
  return fmt::format("post-hoc EMA sigma_rel {} at step {} ({} updates), from {} averages in {} snapshots "
                     "(residual profile sum|r| = {:.2g})",
                     sigma_rel, step, updates, averages, snapshots, residual);
}

namespace {
// Names and shapes on the host, where the snapshots are read and combined whatever the net's device.
io::Named host_shapes(torch::nn::Module& net) {
  io::Named like;
  for (const auto& p : net.named_parameters()) like.emplace_back(p.key(), torch::empty(p.value().sizes()));
  return like;
}
}  // namespace

PosthocEmaSource::PosthocEmaSource(std::string run_dir, torch::nn::Module& like, std::int64_t last_step)
    : run_dir_(std::move(run_dir)), snapshots_(io::read_power_ema_snapshots(run_dir_, host_shapes(like), last_step)) {}

PosthocEma PosthocEmaSource::reconstruct(double sigma_rel, std::int64_t step, torch::nn::Module& net) const {
  std::vector<model::EmaSnapshot> profiles;
  std::vector<const io::PowerEmaState*> states;
  const io::PowerEmaSnapshot* newest = nullptr;
  int files = 0;
  for (const auto& s : snapshots_) {
    if (step >= 0 && s.step > step) break;
    if (s.emas.empty()) continue;
    newest = &s;
    ++files;
    for (const auto& e : s.emas) {
      profiles.push_back({model::power_ema_gamma(e.sigma_rel), e.updates});
      states.push_back(&e);
    }
  }
  if (!newest)
    throw Error(run_dir_ + "/phema: no snapshots of power-function EMAs" +
                (step >= 0 ? " up to step " + std::to_string(step) : std::string()) +
                " to reconstruct an EMA of length " + fmt::format("{}", sigma_rel) +
                " from; train with train.phema_sigma_rels (e.g. [0.05, 0.10]), or use the checkpoint's EMA (an EMA "
                "length of 0)");
  PosthocEma out;
  out.sigma_rel = sigma_rel;
  out.step = newest->step;
  out.updates = newest->emas.front().updates;
  out.snapshots = files;
  out.averages = static_cast<int>(profiles.size());
  torch::Tensor residual;
  const auto x = model::posthoc_coefficients(profiles, model::power_ema_gamma(sigma_rel), out.updates, &residual);
  out.residual = residual.abs().sum().item<double>();
  const auto coefficients = x.contiguous();
  const double* c = coefficients.data_ptr<double>();
  auto params = parameters(net);
  torch::NoGradGuard no_grad;
  for (std::size_t j = 0; j < params.size(); ++j) {
    auto sum = torch::zeros(params[j].second.sizes(), torch::kFloat64);
    for (std::size_t i = 0; i < states.size(); ++i) sum.add_(states[i]->values[j].second.to(torch::kFloat64), c[i]);
    params[j].second.copy_(sum);
  }
  return out;
}

PosthocEma load_posthoc_ema(const std::string& run_dir, double sigma_rel, std::int64_t step, torch::nn::Module& net) {
  return PosthocEmaSource(run_dir, net, step).reconstruct(sigma_rel, step, net);
}

}  // namespace ddpm::eval
