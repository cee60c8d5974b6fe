// `ddpm_dist sweep`'s grid and its choice of the best cell (eval/sweep.hpp).
#include <gtest/gtest.h>

#include <cmath>

#include "config/config.hpp"
#include "eval/sweep.hpp"

using namespace ddpm;

namespace {
config::Config with(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  return config::parse(yaml, "sweep.yaml", overrides);
}
std::string cells(const std::vector<eval::SweepSetting>& grid) {
  std::string out;
  for (const auto& c : grid)
    out += std::to_string(c.ema_sigma_rel).substr(0, 4) + "/" + std::to_string(c.guide_step) + "/" +
           std::to_string(c.guide_ema_sigma_rel).substr(0, 4) + "/" + std::to_string(c.guidance).substr(0, 3) +
           (c.autoguided ? "a" : "") + " ";
  return out;
}
}  // namespace

TEST(Sweep, TheGridMeasuresWeightZeroOncePerEmaLengthAndEveryGuideAtEveryOtherWeight) {
  // Unconditional: a guide step of 0 (no guide model) has no classifier-free half, so it is left out.
  const auto uncond = with("sweep: {ema_sigma_rels: [0, 0.1], guide_steps: [0, 500], guide_ema_sigma_rels: [0.05, 0.1], "
                           "guidances: [0, 1, 2]}\n");
  EXPECT_EQ(cells(eval::sweep_grid(uncond)),
            "0.00/0/0.00/0.0 0.00/500/0.05/1.0a 0.00/500/0.05/2.0a 0.00/500/0.10/1.0a 0.00/500/0.10/2.0a "
            "0.10/0/0.00/0.0 0.10/500/0.05/1.0a 0.10/500/0.05/2.0a 0.10/500/0.10/1.0a 0.10/500/0.10/2.0a ");
  // Conditional with label dropout: the guide step 0 is classifier-free guidance, first.
  const auto cond = with("model: {num_classes: 10}\ntrain: {label_dropout: 0.1}\n"
                         "sweep: {guide_steps: [0, 500], guide_ema_sigma_rels: [0.05], guidances: [0, 1]}\n");
  EXPECT_EQ(cells(eval::sweep_grid(cond)), "0.00/0/0.00/0.0 0.00/0/0.00/1.0 0.00/500/0.05/1.0a ");
  // Another run's guide: a step of 0 is its newest checkpoint, a guide like any other.
  const auto other = with("sample: {guide_run: results/small}\nsweep: {guidances: [1]}\n");
  EXPECT_EQ(cells(eval::sweep_grid(other)), "0.00/0/0.00/1.0a ");
}

TEST(Sweep, TheGridsKeysAreChecked) {
  auto message = [](const std::string& yaml) {
    try {
      with(yaml);
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(message("sweep: {guidances: [1]}\n").find("sweep.guidances"), std::string::npos);
  EXPECT_NE(message("sweep: {ema_sigma_rels: [0.3]}\n").find("sweep.ema_sigma_rels"), std::string::npos);
  EXPECT_NE(message("sweep: {metric: precision}\n").find("sweep.metric"), std::string::npos);
  EXPECT_NE(message("sweep: {guide_steps: [-1]}\n").find("sweep.guide_steps"), std::string::npos);
  EXPECT_NE(message("sweep: {min_cond_accuracy: 0.99}\n").find("the model is unconditional"), std::string::npos);
  EXPECT_EQ(message("sweep: {guide_steps: [100], guidances: [0, 1]}\n"), "");
}

// KID's differences pair the blocks of the same noise: a shift common to every block cancels.
TEST(Sweep, TheBestIsTheLowestAndADifferenceIsJudgedByItsOwnError) {
  io::SweepTable t;
  t.metric = "kid";
  auto row = [](double kid, double se, std::vector<double> blocks) {
    io::SweepRow r;
    r.figures.kid = {kid, se};
    r.figures.fid = {20 + kid, 1.0};
    r.kid_blocks = std::move(blocks);
    return r;
  };
  // Row 1 is row 0 lowered by 1 in every block but one (0.9): differences 1, 1, 1, 0.9.
  t.rows = {row(5.0, 3.0, {2, 8, 4, 6}), row(4.025, 3.0, {1, 7, 3, 5.1}), row(9.0, 3.0, {9, 9, 9, 9})};
  eval::mark_best(t);
  EXPECT_EQ(t.best, 1u);
  EXPECT_DOUBLE_EQ(t.rows[1].vs_best, 0.0);
  EXPECT_TRUE(t.rows[1].within);
  EXPECT_NEAR(t.rows[0].vs_best, 0.975, 1e-12);
  // The blocks' differences {1, 1, 1, 0.9}: sd 0.05, over sqrt(4).
  EXPECT_NEAR(t.rows[0].vs_best_se, 0.05 / 2, 1e-12);
  EXPECT_FALSE(t.rows[0].within);  // independent errors (sqrt(18) = 4.2) would call it a tie
  EXPECT_FALSE(t.rows[2].within);
  // FID has no blocks: the two errors in quadrature.
  t.metric = "fid";
  eval::mark_best(t);
  EXPECT_EQ(t.best, 1u);
  EXPECT_NEAR(t.rows[0].vs_best_se, std::sqrt(2.0), 1e-12);
  EXPECT_TRUE(t.rows[0].within);  // 0.975 against 2 x 1.41
  EXPECT_FALSE(t.rows[2].within);
  // A conditional model's best among the cells accurate enough; none is: the best of all, said.
  t.rows[0].cond_accuracy = 0.995;
  t.rows[1].cond_accuracy = 0.95;
  t.rows[2].cond_accuracy = 0.999;
  t.min_cond_accuracy = 0.99;
  eval::mark_best(t);
  EXPECT_TRUE(t.met);
  EXPECT_EQ(t.best, 0u);
  EXPECT_FALSE(t.rows[1].within);  // lower, but not accurate enough
  EXPECT_NE(eval::sweep_text(t, true).find("among the cells with a conditional accuracy of at least 99%"),
            std::string::npos);
  t.min_cond_accuracy = 0.9999;
  eval::mark_best(t);
  EXPECT_FALSE(t.met);
  EXPECT_EQ(t.best, 1u);
  EXPECT_NE(eval::sweep_text(t, true).find("no cell reaches a conditional accuracy of 99.99%"), std::string::npos);
}
