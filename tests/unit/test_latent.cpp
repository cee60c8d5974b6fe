// Latent diffusion's second stage: the scale (model/latent_space.hpp) against closed forms, the
// sample space's decode and encode, the latent cache's round trip and the fingerprint that ties it
// to one autoencoder (io/latent_cache.hpp), the refusal of a wrong scale (latent/first_stage.hpp), and the
// diffusion task's latent draws, which no split of the batch changes.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "config/config.hpp"
#include "latent/first_stage.hpp"
#include "io/latent_cache.hpp"
#include "model/latent_space.hpp"
#include "train/diffusion_task.hpp"
#include "tiny_model.hpp"
#include "util/error.hpp"

using namespace ddpm;

namespace {

model::Autoencoder seeded_autoencoder(std::uint64_t seed) {
  torch::manual_seed(seed);
  model::Autoencoder ae(small_autoencoder(8), 28, 1);
  ae->eval();
  return ae;
}

// Posteriors of `n` images of 4 x 7 x 7 with means around 0.3 and standard deviations in
// (0.05, 0.5), and the scale measured from them.
io::LatentCache random_cache(std::int64_t n) {
  torch::manual_seed(11);
  io::LatentCache c;
  c.images = n;
  c.mean = torch::randn({n, 4, 7, 7}) * 0.6 + 0.3;
  c.std = torch::rand({n, 4, 7, 7}) * 0.45 + 0.05;
  const auto m = model::latent_moments(c.mean, c.std);
  c.latent_mean = m.mean();
  c.latent_std = m.std();
  c.autoencoder = "0123456789abcdef";
  c.autoencoder_step = 30;
  return c;
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("ddpm_test_latent_" + name)).string();
}

}  // namespace

TEST(LatentSpace, StandardisingGivesUnitVarianceAndIsUndone) {
  // z ~ N(0.3, 0.7^2), 10^6 draws: the standardised mean and std are 0 and 1 up to sampling error
  // (std errors 1e-3 and 7e-4; 5e-3 is 5 of them), and unstandardising restores z to float rounding.
  torch::manual_seed(3);
  const auto z = torch::randn({1000000}, torch::kFloat64) * 0.7 + 0.3;
  const model::LatentScale scale{0.3, 0.7};
  const auto x = scale.standardise(z);
  EXPECT_NEAR(x.mean().item<double>(), 0.0, 5e-3);
  EXPECT_NEAR(x.std().item<double>(), 1.0, 5e-3);
  EXPECT_LT((scale.unstandardise(x) - z).abs().max().item<double>(), 1e-12);
}

TEST(LatentSpace, SampleSpaceDecodesLatentsAndEncodesImages) {
  auto ae = seeded_autoencoder(5);
  const model::LatentScale scale{0.25, 0.6};
  const model::SampleSpace space(ae, scale);
  EXPECT_TRUE(space.latent());
  EXPECT_EQ(space.shape(), (std::vector<std::int64_t>{4, 7, 7}));
  EXPECT_DOUBLE_EQ(space.decode_flops(), ae->decode_flops());
  torch::NoGradGuard no_grad;
  const auto images = torch::rand({6, 1, 28, 28}) * 2 - 1;
  // The reference in the same batches of 4 and 2: a convolution's rounding may depend on the batch
  // size (per CPU kind), the same shapes give the same bits.
  const auto z = torch::cat({ae->encode(images.slice(0, 0, 4)).mean, ae->encode(images.slice(0, 4, 6)).mean});
  // Encoding standardises the posterior mean; decoding undoes the scale.
  EXPECT_TRUE(torch::equal(space.from_images(images, 4), (z - 0.25) / 0.6));
  const auto decoded = space.to_images(space.from_images(images, 4), 4);
  const auto reference = torch::cat({ae->decode(z.slice(0, 0, 4)), ae->decode(z.slice(0, 4, 6))}).clamp(-1, 1);
  // (z - m) / s * s + m differs from z by a few float ulps (~1e-7 of |z|); through the decoder
  // (outputs of order 1) that stays far below 1e-5.
  EXPECT_LT((decoded - reference).abs().max().item<double>(), 1e-5);
  EXPECT_LE(decoded.abs().max().item<double>(), 1.0);
  // A decode at another scale gives other images: the scale is not a no-op.
  const model::SampleSpace wrong(ae, {0.0, 1.0});
  EXPECT_GT((wrong.to_images(space.from_images(images)) - decoded).abs().max().item<double>(), 1e-3);

  const model::SampleSpace pixels({1, 28, 28});
  EXPECT_FALSE(pixels.latent());
  EXPECT_TRUE(torch::equal(pixels.from_images(images), images));
  EXPECT_TRUE(torch::equal(pixels.to_images(images * 3), (images * 3).clamp(-1, 1)));
  EXPECT_EQ(pixels.decode_flops(), 0.0);
}

TEST(LatentCache, RoundTripsAndReadsItsHeaderAlone) {
  const auto c = random_cache(50);
  const auto path = temp_path("cache.h5");
  io::write_latent_cache(path, c);
  const auto r = io::read_latent_cache(path, true);
  EXPECT_TRUE(torch::equal(r.mean, c.mean));
  EXPECT_TRUE(torch::equal(r.std, c.std));
  EXPECT_EQ(r.images, 50);
  EXPECT_EQ(r.latent_mean, c.latent_mean);
  EXPECT_EQ(r.latent_std, c.latent_std);
  EXPECT_EQ(r.autoencoder, c.autoencoder);
  EXPECT_EQ(r.autoencoder_step, 30);
  const auto header = io::read_latent_cache(path, false);
  EXPECT_FALSE(header.mean.defined());
  EXPECT_EQ(header.autoencoder, c.autoencoder);
  std::filesystem::remove(path);
  try {
    io::read_latent_cache(path, false);
    FAIL() << "a missing cache was read";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("ddpm_dist autoencoder CONFIG"), std::string::npos) << e.what();
  }
}

TEST(LatentCache, TheFingerprintNamesTheWeights) {
  auto a = seeded_autoencoder(7), b = seeded_autoencoder(7);
  EXPECT_EQ(io::weights_fingerprint(*a), io::weights_fingerprint(*b));
  EXPECT_EQ(io::weights_fingerprint(*a).size(), 16u);
  // One weight one ulp away is another autoencoder.
  {
    torch::NoGradGuard no_grad;
    auto w = b->parameters().front();
    auto* p = w.data_ptr<float>();
    p[0] = std::nextafter(p[0], 1e30f);
  }
  EXPECT_NE(io::weights_fingerprint(*a), io::weights_fingerprint(*b));
  EXPECT_NE(io::weights_fingerprint(*a), io::weights_fingerprint(*seeded_autoencoder(8)));
}

TEST(LatentCache, AWrongScaleIsCaught) {
  // The stated scale and the one recomputed from the posteriors are float64 sums of the same
  // float32 values: they agree to ~n x 1e-16 relative, so 1e-6 refuses any real error.
  auto c = random_cache(200);
  const auto scale = latent::checked_scale(c, "cache.h5");
  EXPECT_EQ(scale.mean, c.latent_mean);
  EXPECT_EQ(scale.std, c.latent_std);
  // The classic failure: no scale (1), or the std of the means without the posteriors' own spread.
  const double measured = c.latent_std;
  for (const double wrong : {1.0, c.mean.to(torch::kFloat64).std().item<double>(), measured * (1 + 1e-4)}) {
    c.latent_std = wrong;
    try {
      latent::checked_scale(c, "cache.h5");
      FAIL() << "the scale " << wrong << " passed for posteriors of std " << measured;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("cache.h5: the latent scale it states"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("decode to noise"), std::string::npos) << e.what();
    }
  }
}

TEST(LatentDiffusion, DrawsDoNotDependOnTheSplitAndHaveUnitVariance) {
  const auto cfg = config::parse(
      "model: {base_channels: 8, channel_mult: [1], num_res_blocks: 1, attention_resolutions: [], groups: 4}\n"
      "diffusion: {space: latent}\ntrain: {batch_size: 16}\nsample: {clip_x0: false}\n",
      "latent.yaml");
  EXPECT_EQ(config::diffusion_shape(cfg), (std::vector<std::int64_t>{4, 7, 7}));
  EXPECT_EQ(config::unet_config(cfg).in_channels, 4);
  const std::int64_t n = 64;
  const auto cache = random_cache(n);
  const data::Dataset train{torch::zeros({n, 28, 28}, torch::kUInt8), torch::zeros({n}, torch::kUInt8)};
  train::DiffusionTask task(cfg, train, torch::kCPU, cache);
  EXPECT_EQ(task.examples(), n);
  const auto rows = torch::randperm(n, torch::kLong).slice(0, 0, 16);
  const auto whole = task.inputs(3, rows, 0, 16)[0];
  const auto head = task.inputs(3, rows.slice(0, 0, 5), 0, 5)[0];
  const auto tail = task.inputs(3, rows.slice(0, 5, 16), 5, 16)[0];
  EXPECT_TRUE(torch::equal(whole, torch::cat({head, tail})));
  EXPECT_FALSE(torch::equal(whole, task.inputs(4, rows, 0, 16)[0]));  // a fresh draw each step
  // Over every image, 40 draws each: (z - mean) / std has mean 0 and std 1 up to the sampling
  // error of 64 x 196 x 40 = 5e5 values (std error 1.4e-3 and 1e-3; 1e-2 is 7 of them).
  std::vector<torch::Tensor> draws;
  const auto all = torch::arange(n, torch::kLong);
  for (int s = 0; s < 40; ++s)
    for (int b = 0; b < 4; ++b) draws.push_back(task.inputs(s, all.slice(0, 16 * b, 16 * b + 16), 0, 16)[0]);
  const auto x = torch::cat(draws).to(torch::kFloat64);
  EXPECT_NEAR(x.mean().item<double>(), 0.0, 1e-2);
  EXPECT_NEAR(x.std().item<double>(), 1.0, 1e-2);
}

TEST(LatentDiffusion, ConfigurationRefusesPixelOnlySettings) {
  auto error_of = [](const std::string& yaml) {
    try {
      config::parse(yaml, "latent.yaml");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(error_of("diffusion: {space: latent}\nmodel: {channel_mult: [1]}\n").find(
                "key 'sample.clip_x0' clips estimates to the images' range"),
            std::string::npos);
  // Two levels do not divide the 7 x 7 latent.
  EXPECT_NE(error_of("diffusion: {space: latent}\nmodel: {channel_mult: [1, 2]}\nsample: {clip_x0: false}\n")
                .find("latents of the autoencoder (diffusion.space: latent) do not halve exactly 1 times"),
            std::string::npos);
  EXPECT_NE(error_of("diffusion: {space: latents}\n").find("key 'diffusion.space' is 'latents'; allowed: pixel, latent"),
            std::string::npos);
}
