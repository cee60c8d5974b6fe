#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "model/diffusion.hpp"
#include "model/sampler.hpp"

using namespace ddpm;

namespace {
config::DiffusionConfig linear_cfg(int T = 1000) {
  config::DiffusionConfig c;
  c.timesteps = T;
  return c;
}
}  // namespace

TEST(Schedule, LinearMatchesClosedFormAndProduct) {
  const auto cfg = linear_cfg();
  const auto s = model::make_schedule(cfg);
  ASSERT_EQ(s.betas.size(), 1000u);
  EXPECT_DOUBLE_EQ(s.betas.front(), 1e-4);
  EXPECT_NEAR(s.betas.back(), 0.02, 1e-15);
  double log_sum = 0.0;
  for (int t = 0; t < 1000; ++t) {
    EXPECT_NEAR(s.betas[t], 1e-4 + (0.02 - 1e-4) * t / 999.0, 1e-15);
    log_sum += std::log1p(-s.betas[t]);
    EXPECT_NEAR(s.abar[t], std::exp(log_sum), 1e-12 * std::max(1.0, s.abar[t]));
    EXPECT_DOUBLE_EQ(s.abar_prev[t], t == 0 ? 1.0 : s.abar[t - 1]);
  }
  // Known value of the DDPM paper's schedule: abar_T ~ 4.04e-5.
  EXPECT_NEAR(s.abar.back(), 4.0358e-5, 1e-8);
}

TEST(Schedule, CosineMatchesItsClosedForm) {
  auto cfg = linear_cfg();
  cfg.schedule = "cosine";
  const auto s = model::make_schedule(cfg);
  auto f = [&](double t) {
    const double c = std::cos((t / 1000.0 + 0.008) / 1.008 * M_PI / 2.0);
    return c * c;
  };
  // Away from the end, where betas are clipped at 0.999, abar_t = f(t+1) / f(0).
  for (int t = 0; t < 990; ++t) EXPECT_NEAR(s.abar[t], f(t + 1) / f(0), 1e-12);
  for (double b : s.betas) EXPECT_LE(b, 0.999);
}

TEST(Diffusion, QSampleHasClosedFormMeanAndVariance) {
  model::Diffusion d(linear_cfg());
  const int64_t n = 200000, t = 300;
  auto x0 = torch::full({n, 1, 1, 1}, 0.5);
  torch::manual_seed(7);
  auto xt = d.q_sample(x0, torch::full({n}, t, torch::kLong), torch::randn({n, 1, 1, 1}));
  const double abar = d.schedule().abar[t];
  const double mean = xt.mean().item<double>(), var = xt.var().item<double>();
  // Five standard errors of the estimates.
  EXPECT_NEAR(mean, std::sqrt(abar) * 0.5, 5 * std::sqrt((1 - abar) / n));
  EXPECT_NEAR(var, 1 - abar, 5 * (1 - abar) * std::sqrt(2.0 / n));
}

TEST(Diffusion, PosteriorMeanFromX0EqualsFromEps) {
  model::Diffusion d(linear_cfg());
  torch::manual_seed(3);
  auto x0 = torch::rand({64, 1, 8, 8}) * 2 - 1;
  auto eps = torch::randn({64, 1, 8, 8});
  auto t = torch::randint(1, 1000, {64}, torch::kLong);
  auto xt = d.q_sample(x0, t, eps);
  auto a = d.posterior_mean(x0, xt, t);
  auto b = d.posterior_mean_eps(xt, t, eps);
  EXPECT_LT((a - b).abs().max().item<double>(), 2e-4);
  // The ancestral step without clipping and without noise is that mean.
  auto x0_one = x0.slice(0, 0, 1), eps_one = eps.slice(0, 0, 1);
  auto xt_one = d.q_sample(x0_one, torch::full({1}, 500, torch::kLong), eps_one);
  auto step = d.ddpm_step(xt_one, 500, eps_one, torch::zeros_like(xt_one), true, false);
  auto mean = d.posterior_mean(x0_one, xt_one, torch::full({1}, 500, torch::kLong));
  EXPECT_LT((step - mean).abs().max().item<double>(), 1e-4);
}

TEST(Diffusion, DdimWithEtaOneOverAllStepsHasPosteriorStd) {
  model::Diffusion d(linear_cfg());
  const auto& s = d.schedule();
  for (int t = 1; t < 1000; ++t)
    EXPECT_NEAR(model::ddim_sigma(s.abar[t], s.abar[t - 1], 1.0), std::sqrt(s.posterior_variance[t]), 1e-12);
  // The step adds exactly sigma * z.
  auto x = torch::randn({4, 1, 4, 4}), eps = torch::randn({4, 1, 4, 4}), z = torch::randn({4, 1, 4, 4});
  auto with = d.ddim_step(x, 400, 399, eps, z, 1.0, false);
  auto without = d.ddim_step(x, 400, 399, eps, torch::zeros_like(z), 1.0, false);
  EXPECT_LT(((with - without) - std::sqrt(s.posterior_variance[400]) * z).abs().max().item<double>(), 1e-5);
  // And its mean equals the DDPM posterior mean.
  auto ddpm = d.ddpm_step(x, 400, eps, torch::zeros_like(z), true, false);
  EXPECT_LT((without - ddpm).abs().max().item<double>(), 1e-4);
}

TEST(Diffusion, DdimEtaZeroWithTrueNoiseMovesAlongTheForwardPath) {
  model::Diffusion d(linear_cfg());
  auto x0 = torch::rand({8, 1, 4, 4}) * 2 - 1, eps = torch::randn({8, 1, 4, 4});
  auto xt = d.q_sample(x0, torch::full({8}, 700, torch::kLong), eps);
  auto prev = d.ddim_step(xt, 700, 200, eps, torch::Tensor(), 0.0, false);
  auto expected = d.q_sample(x0, torch::full({8}, 200, torch::kLong), eps);
  EXPECT_LT((prev - expected).abs().max().item<double>(), 1e-4);
  auto final_x0 = d.ddim_step(xt, 700, -1, eps, torch::Tensor(), 0.0, false);
  EXPECT_LT((final_x0 - x0).abs().max().item<double>(), 1e-4);
}

TEST(Diffusion, RespacedTimestepsDescendFromTMinusOneToZero) {
  const auto all = model::respaced_timesteps(1000, 1000);
  ASSERT_EQ(all.size(), 1000u);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(all[i], 999 - i);
  const auto ten = model::respaced_timesteps(1000, 10);
  ASSERT_EQ(ten.size(), 10u);
  EXPECT_EQ(ten.front(), 999);
  EXPECT_EQ(ten.back(), 0);
  for (int i = 1; i < 10; ++i) EXPECT_LT(ten[i], ten[i - 1]);
  EXPECT_EQ(model::respaced_timesteps(1000, 1), std::vector<std::int64_t>{999});
}

TEST(Diffusion, LossIsMeanSquaredNoiseError) {
  model::Diffusion d(linear_cfg(10));
  auto x0 = torch::zeros({2, 1, 2, 2}), eps = torch::ones({2, 1, 2, 2});
  auto t = torch::zeros({2}, torch::kLong);
  // A model that predicts zero noise has loss mean(eps^2) = 1.
  auto loss = d.loss([](const torch::Tensor& x, const torch::Tensor&) { return torch::zeros_like(x); }, x0, t, eps);
  EXPECT_DOUBLE_EQ(loss.item<double>(), 1.0);
}

// The ancestral step against the DDPM formulas evaluated here in float64 from betas computed
// independently, over small, middle and large t and t = 0, with and without clipping of the
// predicted x0, for both variances. x_t is large enough that clipping changes the result.
TEST(Diffusion, DdpmStepMatchesTheFormulasWithClippingAndBothVariances) {
  const int T = 1000;
  model::Diffusion d(linear_cfg(T));
  std::vector<double> beta(T), abar(T);
  double prod = 1.0;
  for (int t = 0; t < T; ++t) {
    beta[t] = 1e-4 + (0.02 - 1e-4) * t / (T - 1);
    prod *= 1.0 - beta[t];
    abar[t] = prod;
  }
  torch::manual_seed(12);
  const auto x_t = torch::randn({6, 1, 4, 4}, torch::kFloat64) * 3;
  const auto eps = torch::randn({6, 1, 4, 4}, torch::kFloat64);
  const auto z = torch::randn({6, 1, 4, 4}, torch::kFloat64);
  for (int t : {0, 1, 10, 500, 999}) {
    for (bool clip : {false, true}) {
      for (bool posterior : {false, true}) {
        const double prev = t > 0 ? abar[t - 1] : 1.0;
        auto x0 = (x_t - std::sqrt(1 - abar[t]) * eps) / std::sqrt(abar[t]);
        if (clip) x0 = x0.clamp(-1, 1);
        const auto mean = std::sqrt(prev) * beta[t] / (1 - abar[t]) * x0 +
                          std::sqrt(1 - beta[t]) * (1 - prev) / (1 - abar[t]) * x_t;
        const double var = posterior ? beta[t] * (1 - prev) / (1 - abar[t]) : beta[t];
        const auto expected = t > 0 ? mean + std::sqrt(var) * z : mean;
        const auto got = d.ddpm_step(x_t.to(torch::kFloat32), t, eps.to(torch::kFloat32), z.to(torch::kFloat32),
                                     posterior, clip)
                             .to(torch::kFloat64);
        // float32 arithmetic on values of a few units (x0 before clipping reaches ~500 at t = 999,
        // times a coefficient below 1e-2): 1e-4 absolute is hundreds of units in the last place.
        EXPECT_LT((got - expected).abs().max().item<double>(), 1e-4)
            << "t " << t << " clip " << clip << " posterior " << posterior;
      }
    }
  }
  // The inputs tell the options apart: clipping and the variance each change the step.
  auto step = [&](int t, bool posterior, bool clip) {
    return d.ddpm_step(x_t.to(torch::kFloat32), t, eps.to(torch::kFloat32), z.to(torch::kFloat32), posterior, clip);
  };
  EXPECT_GT((step(10, true, true) - step(10, true, false)).abs().max().item<double>(), 1e-2);
  EXPECT_GT((step(1, true, true) - step(1, false, true)).abs().max().item<double>(), 1e-3);
}

namespace {
model::Diffusion with_prediction(const std::string& prediction) {
  auto c = linear_cfg();
  c.prediction = prediction;
  return model::Diffusion(c);
}
}  // namespace

// Each prediction's target, fed back as the network's output, gives back the true noise; v is
// checked against its definition evaluated here in float64.
TEST(Prediction, EachTargetConvertsBackToTheTrueNoise) {
  torch::manual_seed(5);
  const auto x0 = torch::rand({16, 1, 4, 4}) * 2 - 1, eps = torch::randn({16, 1, 4, 4});
  const auto t = torch::tensor({0, 1, 10, 100, 250, 400, 500, 600, 700, 800, 900, 950, 990, 997, 998, 999});
  for (const char* p : {"eps", "v", "x0"}) {
    const auto d = with_prediction(p);
    const auto xt = d.q_sample(x0, t, eps);
    const auto out = d.target(x0, t, eps);
    // Near t = 0 (x0 prediction) and t = T-1 the conversions divide by small square roots: error
    // relative to the float32 inputs, amplified up to ~1/sqrt(1 - abar_0) = 100.
    EXPECT_LT((d.eps_from_output(out, xt, t) - eps).abs().max().item<double>(), 2e-4) << p;
    EXPECT_LT((d.eps_model([&](const torch::Tensor&, const torch::Tensor&) { return out; })(xt, t) - eps)
                  .abs().max().item<double>(), 2e-4) << p;
  }
  const auto v = with_prediction("v");
  std::vector<double> abar(1000);
  double prod = 1.0;
  for (int i = 0; i < 1000; ++i) abar[i] = (prod *= 1.0 - (1e-4 + (0.02 - 1e-4) * i / 999.0));
  const auto target = v.target(x0, t, eps).to(torch::kFloat64);
  for (int i = 0; i < 16; ++i) {
    const auto ti = t[i].item<std::int64_t>();
    const auto expected = std::sqrt(abar[ti]) * eps[i].to(torch::kFloat64) - std::sqrt(1 - abar[ti]) * x0[i].to(torch::kFloat64);
    EXPECT_LT((target[i] - expected).abs().max().item<double>(), 1e-6) << "t " << ti;
  }
}

// Min-SNR-5 weights against SNR computed here; the three forms agree on the x0 error's weight.
TEST(Prediction, MinSnrWeightsMatchTheirClosedFormsAndAgreeOnX0) {
  std::vector<double> abar(1000);
  double prod = 1.0;
  for (int i = 0; i < 1000; ++i) abar[i] = (prod *= 1.0 - (1e-4 + (0.02 - 1e-4) * i / 999.0));
  const auto eps = with_prediction("eps"), v = with_prediction("v"), x0 = with_prediction("x0");
  for (int t : {0, 50, 200, 500, 999}) {
    const double snr = abar[t] / (1 - abar[t]), m = std::min(snr, 5.0);
    EXPECT_NEAR(eps.min_snr_weight(t, 5.0), m / snr, 1e-12 * m / snr) << t;
    EXPECT_NEAR(x0.min_snr_weight(t, 5.0), m, 1e-12 * m) << t;
    EXPECT_NEAR(v.min_snr_weight(t, 5.0), m / (snr + 1), 1e-12) << t;
    // eps error = sqrt(SNR) x0 error, v error = sqrt(SNR + 1) x0 error (for the same x_t).
    EXPECT_NEAR(eps.min_snr_weight(t, 5.0) * snr, m, 1e-9 * m);
    EXPECT_NEAR(v.min_snr_weight(t, 5.0) * (snr + 1), m, 1e-9 * m);
  }
  // Large SNR (t = 0, SNR ~ 1e4) is clipped to gamma, small SNR (t = 999, ~4e-5) is not.
  EXPECT_NEAR(x0.min_snr_weight(0, 5.0), 5.0, 1e-12);
  EXPECT_NEAR(x0.min_snr_weight(999, 5.0), abar[999] / (1 - abar[999]), 1e-15);
}

// The weighted loss is the mean over examples of weight x the example's mean squared error.
TEST(Prediction, WeightedLossIsTheWeightedMeanOfPerExampleErrors) {
  const auto d = with_prediction("v");
  torch::manual_seed(6);
  const auto x0 = torch::rand({4, 1, 4, 4}) * 2 - 1, eps = torch::randn({4, 1, 4, 4});
  const auto t = torch::tensor({3, 300, 600, 990});
  const auto out = torch::randn({4, 1, 4, 4});
  const auto fake = [&](const torch::Tensor&, const torch::Tensor&) { return out; };
  const auto goal = d.target(x0, t, eps);
  double expected = 0;
  for (int i = 0; i < 4; ++i)
    expected += d.min_snr_weight(t[i].item<std::int64_t>(), 5.0) * (out[i] - goal[i]).pow(2).mean().item<double>() / 4;
  EXPECT_NEAR(d.loss(fake, x0, t, eps, d.min_snr_weights(5.0, torch::kCPU)).item<double>(), expected, 1e-6 * expected);
  EXPECT_NEAR(d.loss(fake, x0, t, eps).item<double>(), (out - goal).pow(2).mean().item<double>(), 1e-7);
}

// A sampler run with a v-predicting network that knows the true noise moves along the forward
// path, as the eps version does (DdimEtaZeroWithTrueNoiseMovesAlongTheForwardPath).
TEST(Prediction, DdimWithAPerfectVNetworkFollowsTheForwardPath) {
  const auto d = with_prediction("v");
  torch::manual_seed(7);
  auto x0 = torch::rand({8, 1, 4, 4}) * 2 - 1, eps = torch::randn({8, 1, 4, 4});
  const auto t700 = torch::full({8}, 700, torch::kLong);
  auto xt = d.q_sample(x0, t700, eps);
  const auto net = d.eps_model([&](const torch::Tensor&, const torch::Tensor& t) { return d.target(x0, t, eps); });
  auto prev = d.ddim_step(xt, 700, 200, net(xt, t700), torch::Tensor(), 0.0, false);
  EXPECT_LT((prev - d.q_sample(x0, torch::full({8}, 200, torch::kLong), eps)).abs().max().item<double>(), 1e-4);
}

namespace {
// For x0 ~ N(0, s^2) per pixel the exact denoiser is known: E[x0 | x_t] = sqrt(abar) s^2 /
// (abar s^2 + 1 - abar) x_t. As a noise estimator, it stands in for a perfectly trained network.
// A function of (x, t) as a Network without labels, for the samplers.
model::Network unlabeled(model::EpsModel f) {
  return [f = std::move(f)](const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor&) { return f(x, t); };
}

model::EpsModel exact_gaussian_eps(const model::Diffusion& d, double s) {
  const auto abar_table = torch::tensor(d.schedule().abar, torch::kFloat64);
  return [abar_table, s](const torch::Tensor& x, const torch::Tensor& t) {
    const auto abar = abar_table.index_select(0, t.cpu()).view({-1, 1, 1, 1});
    const auto xd = x.to(torch::kFloat64);
    const auto x0 = abar.sqrt() * (s * s) / (abar * (s * s) + (1 - abar)) * xd;
    return ((xd - abar.sqrt() * x0) / (1 - abar).sqrt()).to(torch::kFloat32);
  };
}

struct Drawn {
  torch::Tensor noise, images;  // float64
};
Drawn draw(const model::Diffusion& d, double s, const std::string& sampler, int steps, double eta, int n,
           const std::string& variance = "posterior") {
  config::SampleConfig cfg;
  cfg.variance = variance;
  cfg.sampler = sampler;
  cfg.steps = steps;
  cfg.eta = eta;
  cfg.clip_x0 = false;
  cfg.batch_size = n;
  torch::Tensor noise;
  const auto images = model::sample_images(unlabeled(exact_gaussian_eps(d, s)), d, cfg, {1, 2, 2}, {0, n, 11}, torch::kCPU,
                                           nullptr, [&](std::int64_t, const torch::Tensor& x) {
                                             if (!noise.defined()) noise = x.to(torch::kFloat64);
                                           });
  return {noise, images.to(torch::kFloat64)};
}
}  // namespace

// The deterministic samplers integrate the probability-flow ODE, which for Gaussian data maps the
// starting noise z (x_t at t = T-1) to c z with c = s sqrt(1 + sigma_max^2) / sqrt(s^2 + sigma_max^2),
// sigma_t = sqrt((1 - abar_t) / abar_t). With the exact denoiser each sampler's output is a z for
// some a, and |a / c - 1| is its discretisation error alone (no sampling noise): it must fall at
// the method's order when the evaluations double (DDIM first order: about 2x; Heun and
// DPM-Solver++(2M) second order: about 4x). The second-order samplers are also run at five times
// the levels, where the error must be below a sixteenth of the coarse one (order 2 gives a 25th)
// plus the floor that no step count removes: the last step's jump from sigma_min = sigma_0 to 0,
// whose exact factor s / sqrt(s^2 + sigma_0^2) the denoiser's s^2 / (s^2 + sigma_0^2) misses by
// sigma_0^2 / 2s^2 (6e-4 here).
TEST(Samplers, DeterministicSamplersConvergeAtTheirOrderToTheExactFlow) {
  const double s = 0.3;
  model::Diffusion d(linear_cfg());
  const double sigma_max2 = (1 - d.schedule().abar.back()) / d.schedule().abar.back();
  const double c = s * std::sqrt(1 + sigma_max2) / std::sqrt(s * s + sigma_max2);
  auto error = [&](const std::string& sampler, int steps) {
    const auto r = draw(d, s, sampler, steps, 0.0, 64);
    // Values the final clamp to [-1, 1] reached are left out.
    const auto inside = r.images.abs() < 0.99;
    const auto x = r.images.masked_select(inside), z = r.noise.masked_select(inside);
    const double a = ((x * z).sum() / (z * z).sum()).item<double>();
    // Linear: every value is the same multiple of its noise (float32 arithmetic).
    EXPECT_LT((x - a * z).abs().max().item<double>(), 1e-4) << sampler << " x" << steps;
    return std::abs(a / c - 1);
  };
  struct Case {
    const char* sampler;
    int steps;
    double min_ratio;  // of the errors at steps and 2 steps (order 1: 2, order 2: 4), with a margin
  };
  const double floor = (1 - d.schedule().abar[0]) / d.schedule().abar[0] / (2 * s * s);
  for (const auto& k : {Case{"ddim", 50, 1.6}, Case{"heun", 19, 3.0}, Case{"dpmpp_2m", 20, 3.0}}) {
    const bool heun = k.sampler == std::string("heun");
    const double coarse = error(k.sampler, k.steps), fine = error(k.sampler, 2 * k.steps + heun);
    std::cout << k.sampler << ": error " << coarse << " at " << k.steps << " evaluations, " << fine << " at about twice\n";
    EXPECT_GT(coarse / fine, k.min_ratio) << k.sampler;
    if (k.sampler == std::string("ddim")) continue;
    const double finest = error(k.sampler, 10 * k.steps + heun);
    std::cout << k.sampler << ": error " << finest << " at " << 10 * k.steps + heun << " evaluations\n";
    EXPECT_LT(finest, fine / 16 + floor) << k.sampler;
  }
}

// The stochastic samplers against the data distribution's variance: 16,000 values give the
// sample variance a standard error of s^2 sqrt(2 / 16000) = 1.1% of s^2, the mean one of
// s / sqrt(16000). Ancestral sampling with sigma^2 = beta~_t leaves out Var[x0 | x_t] from each
// step's variance and with beta_t overstates it: the two bracket the data's variance (Ho et al.;
// Bao et al.'s Analytic-DPM), a few percent apart at T = 1000. From the same noise, the
// posterior variance must come out below the beta one, each within 5 standard errors plus 5%.
// DDIM with eta = 1 over all T steps is the posterior-variance DDPM sampler. s = 0.3 keeps the
// final clamp to [-1, 1] out of the way (3.3 sd).
TEST(Samplers, StochasticSamplersWithAllStepsDrawTheDataDistribution) {
  const double s = 0.3, allowed = s * s * (5 * std::sqrt(2.0 / 16000) + 0.05);
  model::Diffusion d(linear_cfg());
  const auto posterior = draw(d, s, "ddpm", 1000, 0.0, 4000).images;
  const auto beta = draw(d, s, "ddpm", 1000, 0.0, 4000, "beta").images;
  const auto ddim = draw(d, s, "ddim", 1000, 1.0, 4000).images;
  const double vp = posterior.var().item<double>(), vb = beta.var().item<double>();
  std::cout << "ddpm variance: posterior " << vp << ", beta " << vb << " (data " << s * s << "); mean "
            << posterior.mean().item<double>() << "\n";
  EXPECT_LT(vp, vb);
  EXPECT_NEAR(vp, s * s, allowed);
  EXPECT_NEAR(vb, s * s, allowed);
  EXPECT_NEAR(posterior.mean().item<double>(), 0.0, 5 * s / std::sqrt(16000.0));
  EXPECT_LT((ddim - posterior).abs().max().item<double>(), 1e-4);
}

namespace {
model::Diffusion edm(double sigma_data = 0.5) {
  auto c = linear_cfg();
  c.kind = "edm";
  c.sigma_data = sigma_data;
  return model::Diffusion(c);
}

// The network F that makes EDM's denoiser exact for x0 ~ N(0, s^2) per pixel: D* = s^2 / (s^2 +
// sigma^2) x and F = (D* - c_skip x) / c_out, written from its inputs (c_in x, 250 ln sigma) in
// float64 with EDM's coefficients spelt out here.
model::EpsModel exact_gaussian_f(double s, double sd) {
  return [s, sd](const torch::Tensor& input, const torch::Tensor& c_noise) {
    const auto sigma = (c_noise.to(torch::kFloat64) / 250.0).exp().view({-1, 1, 1, 1});
    const auto norm = (sigma * sigma + sd * sd).sqrt();
    const auto x = input.to(torch::kFloat64) * norm;
    const auto exact = s * s / (s * s + sigma * sigma) * x;
    const auto c_skip = sd * sd / (norm * norm), c_out = sigma * sd / norm;
    return ((exact - c_skip * x) / c_out).to(torch::kFloat32);
  };
}
}  // namespace

// Table 1 of Karras et al. (2022) evaluated by hand for sigma_data = 0.5: at sigma = 0.5,
// sigma^2 + sd^2 = 0.5; at sigma = 2, 4.25; at sigma = 0.002, 0.250004.
TEST(Edm, PreconditioningMatchesItsTable) {
  const auto p = model::edm_preconditioning(torch::tensor({0.5, 2.0, 0.002}, torch::kFloat64), 0.5);
  const double expected[4][3] = {
      {0.5, 0.0588235294117647, 0.999984000255996},                // c_skip = 0.25 / (sigma^2 + 0.25)
      {0.353553390593274, 0.485071250072666, 0.00199998400019200},  // c_out = 0.5 sigma / sqrt(...)
      {1.41421356237310, 0.485071250072666, 1.99998400019200},      // c_in = 1 / sqrt(...)
      {-173.286795139986, 173.286795139986, -1553.65202460555},     // 250 ln sigma
  };
  const torch::Tensor got[4] = {p.c_skip, p.c_out, p.c_in, p.c_noise};
  for (int k = 0; k < 4; ++k)
    for (int i = 0; i < 3; ++i)
      EXPECT_NEAR(got[k][i].item<double>(), expected[k][i], 1e-12 * std::max(1.0, std::abs(expected[k][i])))
          << "coefficient " << k << ", sigma " << i;
}

// For x0 ~ N(0, s^2) the exact denoiser's error has variance s^2 sigma^2 / (s^2 + sigma^2) per
// pixel, so EDM's loss (that error / c_out^2) is s^2 (sigma^2 + sd^2) / (sd^2 (s^2 + sigma^2)): 1 at
// every sigma when s = sigma_data. Each value is a mean of 64,000 squares of Gaussian errors:
// relative standard error sqrt(2 / 64000) = 0.56%; allowed 5 of them.
TEST(Edm, LossOfTheExactDenoiserHasItsClosedForm) {
  torch::manual_seed(8);
  for (double s : {0.5, 0.3}) {
    const auto d = edm();
    const auto f = exact_gaussian_f(s, 0.5);
    for (double sigma : {0.01, 0.3, 1.0, 20.0}) {
      const auto x0 = torch::randn({4000, 1, 4, 4}) * s, eps = torch::randn({4000, 1, 4, 4});
      const double loss = d.loss(f, x0, torch::full({4000}, sigma), eps).item<double>();
      const double expected = s * s * (sigma * sigma + 0.25) / (0.25 * (s * s + sigma * sigma));
      EXPECT_NEAR(loss, expected, 5 * std::sqrt(2.0 / 64000) * expected) << "s " << s << ", sigma " << sigma;
    }
  }
}

// ln sigma of the training levels: mean p_mean and standard deviation p_std, within 5 standard
// errors of 20,000 draws; ddpm draws timesteps in [0, T).
TEST(Edm, TrainingLevelsAreLogNormal) {
  const int n = 20000;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(9);
  const auto log_sigma = edm().draw_levels(n, gen, torch::TensorOptions()).to(torch::kFloat64).log();
  EXPECT_NEAR(log_sigma.mean().item<double>(), -1.2, 5 * 1.2 / std::sqrt(double(n)));
  EXPECT_NEAR(log_sigma.std().item<double>(), 1.2, 5 * 1.2 / std::sqrt(2.0 * n));
  const auto t = model::Diffusion(linear_cfg()).draw_levels(n, gen, torch::TensorOptions());
  EXPECT_EQ(t.scalar_type(), torch::kLong);
  EXPECT_EQ(t.min().item<std::int64_t>(), 0);
  EXPECT_EQ(t.max().item<std::int64_t>(), 999);
}

// The exact F, seen by the samplers through eps_model, is the exact noise estimator of the
// discrete schedule at every timestep; so every sampler draws from it what it draws from that one
// (DeterministicSamplersConvergeAtTheirOrderToTheExactFlow and
// StochasticSamplersWithAllStepsDrawTheDataDistribution). eps = (x - D) / sigma divides float32
// rounding of x (a few 1e-7 |x|) by sigma_0 = 0.01: allowed 1e-4 max(1, |x|).
TEST(Edm, EveryTimestepGivesTheExactNoiseEstimate) {
  const double s = 0.3;
  const auto d = edm();
  const auto eps = d.eps_model(exact_gaussian_f(s, 0.5));
  const auto reference = exact_gaussian_eps(model::Diffusion(linear_cfg()), s);
  torch::manual_seed(10);
  const auto t = torch::tensor({0, 1, 10, 100, 300, 500, 700, 900, 990, 999});
  const auto x0 = torch::randn({10, 1, 4, 4}) * s;
  const auto xt = d.q_sample(x0, t, torch::randn({10, 1, 4, 4}));
  const auto bound = 1e-4 * xt.abs().clamp_min(1.0);
  EXPECT_TRUE(((eps(xt, t) - reference(xt, t)).abs() <= bound).all().item<bool>());
  for (const char* sampler : {"ddim", "heun", "dpmpp_2m", "ddpm"}) {
    config::SampleConfig cfg;
    cfg.sampler = sampler;
    cfg.steps = 20;
    cfg.clip_x0 = false;
    cfg.batch_size = 64;
    // The samplers turn F into noise estimates through d (edm); the reference is one already.
    const auto a = model::sample_images(unlabeled(exact_gaussian_f(s, 0.5)), d, cfg, {1, 2, 2}, {0, 64, 12}, torch::kCPU);
    const auto b = model::sample_images(unlabeled(reference), model::Diffusion(linear_cfg()), cfg, {1, 2, 2},
                                        {0, 64, 12}, torch::kCPU);
    // Each step is a contraction towards the data's scale; the difference stays at the per-step
    // level (ddpm: 1000 steps of it).
    EXPECT_LT((a - b).abs().max().item<double>(), 1e-3) << sampler;
  }
}
