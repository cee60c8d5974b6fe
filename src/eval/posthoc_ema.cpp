#include "eval/posthoc_ema.hpp"

#include <fmt/format.h>

#include "io/power_emas.hpp"
#include "model/power_ema.hpp"
#include "util/error.hpp"

namespace ddpm::eval {

std::string PosthocEma::describe() const {
  return fmt::format("post-hoc EMA sigma_rel {} at step {} ({} updates), from {} averages in {} snapshots "
                     "(residual profile sum|r| = {:.2g})",
                     sigma_rel, step, updates, averages, snapshots, residual);
}

PosthocEma load_posthoc_ema(const std::string& run_dir, double sigma_rel, std::int64_t step, torch::nn::Module& net) {
  io::Named params;
  for (const auto& p : net.named_parameters()) params.emplace_back(p.key(), p.value());
  const auto snaps = io::read_power_ema_snapshots(run_dir, params, step);
  if (snaps.empty() || snaps.back().emas.empty())
    throw Error(run_dir + "/phema: no snapshots of power-function EMAs" +
                (step >= 0 ? " up to step " + std::to_string(step) : std::string()) +
                " to reconstruct eval.ema_sigma_rel from; train with train.phema_sigma_rels (e.g. [0.05, 0.10]), or "
                "set eval.ema_sigma_rel: 0 for the run's EMA");
  std::vector<model::EmaSnapshot> profiles;
  std::vector<const io::PowerEmaState*> states;
  for (const auto& s : snaps)
    for (const auto& e : s.emas) {
      profiles.push_back({model::power_ema_gamma(e.sigma_rel), e.updates});
      states.push_back(&e);
    }
  PosthocEma out;
  out.sigma_rel = sigma_rel;
  out.step = snaps.back().step;
  out.updates = snaps.back().emas.front().updates;
  out.snapshots = static_cast<int>(snaps.size());
  out.averages = static_cast<int>(profiles.size());
  torch::Tensor residual;
  const auto x = model::posthoc_coefficients(profiles, model::power_ema_gamma(sigma_rel), out.updates, &residual);
  out.residual = residual.abs().sum().item<double>();
  const auto coefficients = x.contiguous();
  const double* c = coefficients.data_ptr<double>();
  torch::NoGradGuard no_grad;
  for (std::size_t j = 0; j < params.size(); ++j) {
    auto sum = torch::zeros(params[j].second.sizes(), torch::kFloat64);
    for (std::size_t i = 0; i < states.size(); ++i) sum.add_(states[i]->values[j].second.to(torch::kFloat64), c[i]);
    params[j].second.copy_(sum);
  }
  return out;
}

}  // namespace ddpm::eval
