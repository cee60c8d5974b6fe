#include "model/power_ema.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "util/error.hpp"

namespace ddpm::model {

double power_ema_sigma_rel(double gamma) {
  return std::sqrt((gamma + 1) / ((gamma + 2) * (gamma + 2) * (gamma + 3)));
}

double power_ema_gamma(double sigma_rel) {
  const double widest = power_ema_sigma_rel(0.0);
  if (!(sigma_rel > 0.0 && sigma_rel <= widest))
    throw Error(fmt::format("sigma_rel {} is outside (0, {:.4f}]: a power-function EMA with gamma >= 0 spans at most "
                            "that share of training",
                            sigma_rel, widest));
  // sigma_rel falls monotonically for gamma >= 0 (as ~gamma^-1/2): bisection in log(1 + gamma).
  double lo = 0.0, hi = std::log1p(1e12);
  for (int i = 0; i < 200 && hi - lo > 1e-15 * hi; ++i) {
    const double mid = 0.5 * (lo + hi);
    (power_ema_sigma_rel(std::expm1(mid)) > sigma_rel ? lo : hi) = mid;
  }
  return std::expm1(0.5 * (lo + hi));
}

torch::Tensor power_ema_profile(double gamma, std::int64_t updates, std::int64_t length) {
  auto profile = torch::zeros({length}, torch::kFloat64);
  const auto n = std::min(updates, length);
  if (n <= 0) return profile;
  const auto s = torch::arange(1, n + 1, torch::kFloat64);
  const double t = double(updates);
  profile.slice(0, 0, n) = torch::pow(s / t, gamma + 1) - torch::pow((s - 1) / t, gamma + 1);
  return profile;
}

PowerEma::PowerEma(torch::Tensor live_values, double sigma_rel)
    : live_(std::move(live_values)), sigma_rel_(sigma_rel), gamma_(power_ema_gamma(sigma_rel)) {
  values_ = live_.detach().clone();
  updates_ = torch::zeros({}, live_.options().dtype(torch::kFloat64));
}

void PowerEma::update(const torch::Tensor& take) {
  torch::NoGradGuard no_grad;
  const auto t = updates_ + take.to(torch::kFloat64);
  // The share 1 - beta_t of update t where it is taken, 0 where not (t is then unchanged).
  const auto share = (1.0 - torch::pow(1.0 - 1.0 / t.clamp_min(1.0), gamma_ + 1)) * take.to(torch::kFloat64);
  values_.mul_(1.0 - share).addcmul_(live_.detach(), share.to(values_.scalar_type()));
  updates_.copy_(t);
}

std::int64_t PowerEma::updates() const { return static_cast<std::int64_t>(updates_.item<double>()); }

void PowerEma::set_updates(std::int64_t n) { updates_.fill_(double(n)); }

torch::Tensor posthoc_coefficients(const std::vector<EmaSnapshot>& snapshots, double gamma, std::int64_t updates,
                                   torch::Tensor* residual) {
  if (snapshots.empty()) throw Error("post-hoc EMA: no snapshots to reconstruct from");
  std::int64_t length = updates;
  for (const auto& s : snapshots) length = std::max(length, s.updates);
  std::vector<torch::Tensor> columns;
  for (const auto& s : snapshots) columns.push_back(power_ema_profile(s.gamma, s.updates, length));
  const auto profiles = torch::stack(columns, 1);  // [length, snapshots]
  const auto target = power_ema_profile(gamma, updates, length).unsqueeze(1);
  // Least squares on the profiles themselves (not the normal equations, which square the
  // condition number of nearly alike snapshots); gelsd drops directions below rcond.
  const auto x = std::get<0>(torch::linalg_lstsq(profiles, target, 1e-12, "gelsd")).squeeze(1);
  if (residual) *residual = profiles.matmul(x) - target.squeeze(1);
  return x;
}

}  // namespace ddpm::model
