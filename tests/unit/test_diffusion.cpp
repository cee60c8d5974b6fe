#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <map>

#include "model/diffusion.hpp"
#include "model/guidance.hpp"
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

namespace {
// x_t in the samplers' variance-exploding form: x = x_t / sqrt(abar_t), at noise level sigma_t.
torch::Tensor ve(const model::Diffusion& d, const torch::Tensor& x_t, int t) {
  return x_t * (1.0 / std::sqrt(d.schedule().abar[t]));
}
}  // namespace

// With the true x0, a deterministic step (eta = 0) moves along the forward path: x_700 -> x_200
// from the same noise, and to sigma = 0 gives x0 itself.
TEST(Diffusion, DdimEtaZeroWithTrueNoiseMovesAlongTheForwardPath) {
  model::Diffusion d(linear_cfg());
  torch::manual_seed(2);
  auto x0 = torch::rand({8, 1, 4, 4}) * 2 - 1, eps = torch::randn({8, 1, 4, 4});
  const auto x = ve(d, d.q_sample(x0, torch::full({8}, 700, torch::kLong), eps), 700);
  const auto prev = model::ancestral_step(x, x0, d.sigma(700), d.sigma(200), 0.0, false, {});
  const auto expected = ve(d, d.q_sample(x0, torch::full({8}, 200, torch::kLong), eps), 200);
  EXPECT_LT((prev - expected).abs().max().item<double>(), 1e-4);
  EXPECT_TRUE(torch::equal(model::ancestral_step(x, x0, d.sigma(700), 0.0, 0.0, false, {}), x0));
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
  // The step through the denoiser's interface: x = x_t / sqrt(abar_t), D = the x0 of the noise
  // estimate (clipped or not), to sigma_{t-1} with eta 1, back to x_{t-1} = sqrt(abar_{t-1}) x'
  // (the step's noise, in x's units, is the variance's divided by abar_{t-1}).
  auto step = [&](int t, bool posterior, bool clip) {
    auto x0 = (x_t - std::sqrt(1 - abar[t]) * eps) / std::sqrt(abar[t]);
    if (clip) x0 = x0.clamp(-1, 1);
    const double prev = t > 0 ? abar[t - 1] : 1.0;
    const double next = t > 0 ? d.sigma(t - 1) : 0.0;
    const auto x = (x_t / std::sqrt(abar[t])).to(torch::kFloat32);
    return (model::ancestral_step(x, x0.to(torch::kFloat32), d.sigma(t), next, 1.0, !posterior, z.to(torch::kFloat32))
                .to(torch::kFloat64) *
            std::sqrt(prev));
  };
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
        // float32 arithmetic on x = x_t / sqrt(abar_t) (up to ~500 at t = 999, a few 1e-5 of
        // rounding) scaled back by sqrt(abar_{t-1}): 1e-4 absolute is hundreds of units in the last place.
        EXPECT_LT((step(t, posterior, clip) - expected).abs().max().item<double>(), 1e-4)
            << "t " << t << " clip " << clip << " posterior " << posterior;
      }
    }
  }
  // The inputs tell the options apart: clipping and the variance each change the step.
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

// Each prediction's target, fed back as the network's output, gives back the clean image, by
// x0_from_output and through the denoiser D(x, sigma_t) (whose x is x_t / sqrt(abar_t)); v is
// checked against its definition evaluated here in float64.
TEST(Prediction, EachTargetConvertsBackToTheCleanImage) {
  torch::manual_seed(5);
  const auto x0 = torch::rand({16, 1, 4, 4}) * 2 - 1, eps = torch::randn({16, 1, 4, 4});
  const auto t = torch::tensor({0, 1, 10, 100, 250, 400, 500, 600, 700, 800, 900, 950, 990, 997, 998, 999});
  for (const char* p : {"eps", "v", "x0"}) {
    const auto d = with_prediction(p);
    const auto xt = d.q_sample(x0, t, eps);
    const auto out = d.target(x0, t, eps);
    for (int i = 0; i < 16; ++i) {
      const auto ti = t[i].item<std::int64_t>();
      const auto row = [&](const torch::Tensor& v) { return v.slice(0, i, i + 1); };
      // Near t = T-1, eps's x0 divides by sqrt(abar) ~ 6e-3: float32 rounding of x_t amplified 160x.
      EXPECT_LT((d.x0_from_output(row(out), row(xt), ti) - row(x0)).abs().max().item<double>(), 2e-4) << p << " " << ti;
      const auto D = d.denoiser([&](const torch::Tensor&, const torch::Tensor& level, const torch::Tensor&) {
        EXPECT_EQ(level.item<std::int64_t>(), ti);
        return row(out);
      });
      EXPECT_LT((D(ve(d, row(xt), ti), d.sigma(ti), {}) - row(x0)).abs().max().item<double>(), 2e-4) << p << " " << ti;
    }
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

// What Min-SNR-gamma promises: whatever the network predicts, its weighted loss is min(SNR_t,
// gamma) x the mean squared error of the x0 it implies. Networks of the three predictions that all
// imply x0 + e (outputs written here in float64 from the definitions, SNR from betas computed
// here) must each give the loss min(SNR, 5) mean(e^2), averaged over the examples. float32
// outputs: eps carries e x sqrt(SNR) up to 100x at t = 0, a relative rounding of a few 1e-7 of each
// square; allowed 1e-5 relative.
TEST(Prediction, MinSnrWeightsGiveEveryPredictionTheSameX0Loss) {
  std::vector<double> abar(1000);
  double prod = 1.0;
  for (int i = 0; i < 1000; ++i) abar[i] = (prod *= 1.0 - (1e-4 + (0.02 - 1e-4) * i / 999.0));
  torch::manual_seed(4);
  const std::vector<std::int64_t> ts{0, 50, 200, 500, 999};
  const auto n = static_cast<std::int64_t>(ts.size());
  const auto x0 = torch::rand({n, 1, 4, 4}, torch::kFloat64) * 2 - 1, eps = torch::randn({n, 1, 4, 4}, torch::kFloat64);
  const auto e = torch::randn({n, 1, 4, 4}, torch::kFloat64) * 0.1;
  const auto ab = torch::tensor(std::vector<double>{abar[0], abar[50], abar[200], abar[500], abar[999]}, torch::kFloat64)
                      .view({-1, 1, 1, 1});
  const auto x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps, x0_hat = x0 + e;
  const auto eps_hat = (x_t - ab.sqrt() * x0_hat) / (1 - ab).sqrt();
  const std::map<std::string, torch::Tensor> outputs{
      {"eps", eps_hat}, {"x0", x0_hat}, {"v", ab.sqrt() * eps_hat - (1 - ab).sqrt() * x0_hat}};
  double expected = 0.0;
  for (std::int64_t i = 0; i < n; ++i) {
    const double snr = abar[ts[i]] / (1 - abar[ts[i]]);
    expected += std::min(snr, 5.0) * e[i].pow(2).mean().item<double>() / double(n);
  }
  const auto t = torch::tensor(ts);
  for (const auto& [p, out] : outputs) {
    const auto d = with_prediction(p);
    const auto network = [&](const torch::Tensor&, const torch::Tensor&) { return out.to(torch::kFloat32); };
    const double loss = d.loss(network, x0.to(torch::kFloat32), t, eps.to(torch::kFloat32),
                               d.min_snr_weights(5.0, torch::kCPU)).item<double>();
    EXPECT_NEAR(loss, expected, 1e-5 * expected) << p;
  }
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

// A sampler step with a v-predicting network that knows the true noise moves along the forward
// path, as the eps version does (DdimEtaZeroWithTrueNoiseMovesAlongTheForwardPath).
TEST(Prediction, DdimWithAPerfectVNetworkFollowsTheForwardPath) {
  const auto d = with_prediction("v");
  torch::manual_seed(7);
  auto x0 = torch::rand({8, 1, 4, 4}) * 2 - 1, eps = torch::randn({8, 1, 4, 4});
  const auto x = ve(d, d.q_sample(x0, torch::full({8}, 700, torch::kLong), eps), 700);
  const auto D = d.denoiser(
      [&](const torch::Tensor&, const torch::Tensor& t, const torch::Tensor&) { return d.target(x0, t, eps); });
  const auto prev = model::ancestral_step(x, D(x, d.sigma(700), {}), d.sigma(700), d.sigma(200), 0.0, false, {});
  EXPECT_LT((prev - ve(d, d.q_sample(x0, torch::full({8}, 200, torch::kLong), eps), 200)).abs().max().item<double>(),
            1e-4);
}

namespace {
// For x0 ~ N(0, s^2) per pixel the exact denoiser is known: E[x0 | x_t] = sqrt(abar) s^2 /
// (abar s^2 + 1 - abar) x_t. As a noise estimator, it stands in for a perfectly trained network.
// A function of (x, t) as a Network without labels, for the samplers.
model::Network unlabeled(model::NetworkAt f) {
  return [f = std::move(f)](const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor&) { return f(x, t); };
}

model::NetworkAt exact_gaussian_eps(const model::Diffusion& d, double s) {
  const auto abar_table = torch::tensor(d.schedule().abar, torch::kFloat64);
  return [abar_table, s](const torch::Tensor& x, const torch::Tensor& t) {
    const auto abar = abar_table.index_select(0, t.cpu()).view({-1, 1, 1, 1});
    const auto xd = x.to(torch::kFloat64);
    const auto x0 = abar.sqrt() * (s * s) / (abar * (s * s) + (1 - abar)) * xd;
    return ((xd - abar.sqrt() * x0) / (1 - abar).sqrt()).to(torch::kFloat32);
  };
}

model::NetworkAt exact_gaussian_f(double s, double sd);

// The exact denoiser of N(0, s^2) data for `d`: through EDM's F for an EDM model, else through the
// noise estimate.
model::Denoiser exact_denoiser(const model::Diffusion& d, double s) {
  return d.denoiser(unlabeled(d.edm() ? exact_gaussian_f(s, 0.5) : exact_gaussian_eps(d, s)));
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
  const auto images = model::sample_images(exact_denoiser(d, s), d, cfg, {1, 2, 2}, {0, n, 11}, torch::kCPU,
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
// (a DDPM-trained model on trained timesteps, an EDM one at EDM's levels themselves)
// plus the floor that no step count removes: the last step's jump from sigma_min = sigma_0 to 0,
// whose exact factor s / sqrt(s^2 + sigma_0^2) the denoiser's s^2 / (s^2 + sigma_0^2) misses by
// sigma_0^2 / 2s^2 (6e-4 here).
TEST(Samplers, DeterministicSamplersConvergeAtTheirOrderToTheExactFlow) {
  const double s = 0.3;
  auto edm_cfg = linear_cfg();
  edm_cfg.kind = "edm";
  for (const auto& d : {model::Diffusion(linear_cfg()), model::Diffusion(edm_cfg)}) {
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
    std::cout << (d.edm() ? "edm " : "") << k.sampler << ": error " << coarse << " at " << k.steps << " evaluations, " << fine << " at about twice\n";
    EXPECT_GT(coarse / fine, k.min_ratio) << k.sampler;
    if (k.sampler == std::string("ddim")) continue;
    const double finest = error(k.sampler, 10 * k.steps + heun);
    std::cout << (d.edm() ? "edm " : "") << k.sampler << ": error " << finest << " at " << 10 * k.steps + heun << " evaluations\n";
    EXPECT_LT(finest, fine / 16 + floor) << k.sampler;
  }
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
model::NetworkAt exact_gaussian_f(double s, double sd) {
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

// EDM's D of the exact F is the exact denoiser s^2 / (s^2 + sigma^2) x at any level, trained or
// not, and at the trained levels it is what the discrete model's exact noise estimate gives; so
// the samplers on trained levels (ddim, ddpm) draw from one what they draw from the other (each
// step a contraction towards the data's scale: the difference stays at the per-step level, ddpm
// 1000 steps of it). float32 rounding of x (a few 1e-7 |x|), amplified up to 1 / sqrt(abar_T)
// = 160 by the discrete conversion: allowed 1e-4 max(1, |x|).
TEST(Edm, TheDenoiserIsExactAtAnyLevel) {
  const double s = 0.3;
  const auto d = edm();
  const model::Diffusion discrete(linear_cfg());
  const auto D = exact_denoiser(d, s), reference = exact_denoiser(discrete, s);
  torch::manual_seed(10);
  for (double sigma : {0.002, 0.01, 0.137, 1.0, 7.3, 80.0, 157.0}) {
    const auto x = torch::randn({10, 1, 4, 4}) * std::sqrt(s * s + sigma * sigma);
    const auto exact = x.to(torch::kFloat64) * (s * s / (s * s + sigma * sigma));
    EXPECT_LT((D(x, sigma, {}) - exact).abs().max().item<double>(), 1e-5 * std::max(1.0, sigma)) << sigma;
  }
  for (int t : {0, 1, 10, 100, 300, 500, 700, 900, 990, 999}) {
    const double sigma = d.sigma(t);
    const auto x = torch::randn({10, 1, 4, 4}) * std::sqrt(s * s + sigma * sigma);
    const auto bound = 1e-4 * x.abs().clamp_min(1.0);
    EXPECT_TRUE(((D(x, sigma, {}) - reference(x, sigma, {})).abs() <= bound).all().item<bool>()) << t;
  }
  for (const char* sampler : {"ddim", "ddpm"}) {
    config::SampleConfig cfg;
    cfg.sampler = sampler;
    cfg.steps = 20;
    cfg.clip_x0 = false;
    cfg.batch_size = 64;
    const auto a = model::sample_images(D, d, cfg, {1, 2, 2}, {0, 64, 12}, torch::kCPU);
    const auto b = model::sample_images(reference, discrete, cfg, {1, 2, 2}, {0, 64, 12}, torch::kCPU);
    EXPECT_LT((a - b).abs().max().item<double>(), 1e-3) << sampler;
  }
}

// EDM runs the second-order samplers at EDM's noise levels themselves (against their closed form);
// a DDPM-trained model at its trained levels, the nearest in log sigma, without repeats: at T = 100
// and 75 levels asked, fewer. Every sampler makes as many network evaluations per image as
// network_evaluations reports (counted through a network that counts its calls, over one batch).
TEST(Samplers, LevelsAndTheEvaluationsMadeAreTheOnesReported) {
  auto discrete_cfg = linear_cfg(100), edm_cfg = linear_cfg(100);
  edm_cfg.kind = "edm";
  const model::Diffusion discrete(discrete_cfg), continuous(edm_cfg);
  config::SampleConfig cfg;
  cfg.sampler = "heun";
  cfg.steps = 149;
  cfg.clip_x0 = false;
  cfg.batch_size = 4;
  const auto levels = model::sampling_levels(continuous, cfg);
  ASSERT_EQ(levels.size(), 75u);
  const double hi = std::pow(continuous.sigma(99), 1 / 7.0), lo = std::pow(continuous.sigma(0), 1 / 7.0);
  for (int i = 0; i < 75; ++i) EXPECT_NEAR(levels[i], std::pow(hi + i / 74.0 * (lo - hi), 7.0), 1e-13 * levels[i]) << i;
  const auto snapped = model::sampling_levels(discrete, cfg);
  EXPECT_LT(snapped.size(), 75u);
  for (std::size_t i = 0; i < snapped.size(); ++i) {
    EXPECT_EQ(snapped[i], discrete.sigma(discrete.timestep_at(snapped[i]))) << i;
    if (i > 0) {
      EXPECT_LT(snapped[i], snapped[i - 1]) << i;
    }
  }
  EXPECT_EQ(model::network_evaluations(cfg, edm_cfg), 149);
  EXPECT_EQ(model::network_evaluations(cfg, discrete_cfg), 2 * int(snapped.size()) - 1);
  struct Case {
    const char* sampler;
    int steps;
  };
  for (const auto& model_cfg : {discrete_cfg, edm_cfg}) {
    const model::Diffusion d(model_cfg);
    for (const auto& k : {Case{"ddpm", 100}, Case{"ddim", 20}, Case{"ddim", 150}, Case{"heun", 19}, Case{"heun", 149},
                          Case{"dpmpp_2m", 20}, Case{"dpmpp_2m", 150}}) {
      cfg.sampler = k.sampler;
      cfg.steps = k.steps;
      int calls = 0;
      const auto counting = d.denoiser([&](const torch::Tensor& x, const torch::Tensor&, const torch::Tensor&) {
        ++calls;
        return torch::zeros_like(x);
      });
      model::sample_images(counting, d, cfg, {1, 2, 2}, {0, 4, 1}, torch::kCPU);
      EXPECT_EQ(calls, model::network_evaluations(cfg, model_cfg)) << model_cfg.kind << " " << k.sampler << " x" << k.steps;
    }
  }
}

// Guidance on D equals guidance on the network's output, for every prediction and for EDM's F:
// each one's x0 is affine in the output at fixed x, with weights that sum to one. The network
// applies another affine map of x to each class. Values of a few units in float32, through up to
// 1 / sqrt(abar_t) = 10 at t = 500: allowed 1e-5 of (1 + 2w) times the scale.
TEST(Guidance, OnTheDenoiserEqualsOnTheNetworkForEveryPrediction) {
  const model::Network net = [](const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& labels) {
    const auto c = labels.to(torch::kFloat32).view({-1, 1, 1, 1});
    return x * (0.5 + 0.1 * c) + 0.3 * c - t.to(torch::kFloat32).view({-1, 1, 1, 1}) * 2e-4;
  };
  torch::manual_seed(13);
  const auto labels = torch::tensor({0, 3, 7, 9});
  const auto x = torch::randn({4, 1, 4, 4}) * 2;
  for (const char* p : {"eps", "v", "x0", "edm"}) {
    auto c = linear_cfg();
    if (p == std::string("edm")) c.kind = "edm";
    else c.prediction = p;
    const model::Diffusion d(c);
    for (double w : {0.5, 4.0}) {
      const model::Network guided_output = [&](const torch::Tensor& x_t, const torch::Tensor& t,
                                               const torch::Tensor& l) {
        return (1 + w) * net(x_t, t, l) - w * net(x_t, t, torch::full_like(l, 10));
      };
      for (int t : {10, 500}) {
        const auto a = model::guided(d.denoiser(net), w, 10)(x, d.sigma(t), labels);
        const auto b = d.denoiser(guided_output)(x, d.sigma(t), labels);
        const double scale = std::max(1.0, b.abs().max().item<double>());
        EXPECT_LT((a - b).abs().max().item<double>(), 1e-5 * (1 + 2 * w) * scale) << p << " w " << w << " t " << t;
      }
    }
  }
}

// Autoguidance: (1 + w) D - w D_guide, the guide asked with the same classes (its conditional
// output, not "no class"), never called at w = 0, and for unconditional calls too.
TEST(Guidance, AutoguidanceWeighsTheModelAgainstTheGuideWithTheSameLabels) {
  torch::manual_seed(3);
  const auto x = torch::randn({4, 1, 4, 4});
  const auto labels = torch::tensor({0, 3, 7, 9});
  auto as_image = [](const torch::Tensor& l) { return l.to(torch::kFloat32).view({-1, 1, 1, 1}); };
  int guide_calls = 0;
  torch::Tensor guide_labels;
  const model::Denoiser main = [&](const torch::Tensor& x_, double sigma, const torch::Tensor& l) {
    return x_ * 0.9 / (1 + sigma) + (l.defined() ? 0.1 * as_image(l) : torch::zeros({1}));
  };
  const model::Denoiser guide = [&](const torch::Tensor& x_, double sigma, const torch::Tensor& l) {
    ++guide_calls;
    guide_labels = l;
    return x_ * 0.5 / (1 + sigma) - (l.defined() ? 0.2 * as_image(l) : torch::zeros({1}));
  };
  EXPECT_TRUE(torch::equal(model::autoguided(main, guide, 0.0)(x, 0.7, labels), main(x, 0.7, labels)));
  EXPECT_EQ(guide_calls, 0);
  for (double w : {0.5, 3.0}) {
    for (const auto& l : {labels, torch::Tensor()}) {
      const auto got = model::autoguided(main, guide, w)(x, 0.7, l);
      const auto want = (1 + w) * main(x, 0.7, l) - w * guide(x, 0.7, l);
      // Two float products and a difference: a few ulps of the largest term, (1 + 2w) x |D|.
      const double tol = 4 * 1.2e-7 * (1 + 2 * w) * std::max(1.0, want.abs().max().item<double>());
      EXPECT_LT((got - want).abs().max().item<double>(), tol) << "w " << w;
      EXPECT_EQ(guide_labels.defined(), l.defined());
      if (l.defined()) EXPECT_TRUE(torch::equal(guide_labels, labels));
    }
  }
}
