#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <map>
#include <tuple>

#include "data/augment.hpp"
#include "util/row_keys.hpp"

using namespace ddpm;

namespace {

// A row with a distinct value per pixel (1..H*W, no value 0), so that where each pixel went can be
// read back from the output.
torch::Tensor numbered(std::int64_t rows, std::int64_t h, std::int64_t w) {
  return torch::arange(1, h * w + 1, torch::kInt64).remainder(255).add(1).to(torch::kUInt8).view({1, h, w}).repeat(
      {rows, 1, 1});
}

// The (dy, dx, mirrored) that maps `in` to `out`, found by trying every candidate; fails if none does.
std::tuple<int, int, bool> change_of(const torch::Tensor& in, const torch::Tensor& out) {
  const auto h = in.size(0), w = in.size(1);
  for (int mirror = 0; mirror < 2; ++mirror)
    for (int dy = -2; dy <= 2; ++dy)
      for (int dx = -2; dx <= 2; ++dx) {
        auto src = mirror ? in.flip(1) : in;
        auto expected = torch::zeros_like(in);
        // out[i][j] = src[i - dy][j - dx] where inside, else 0 (black).
        const auto i0 = std::max<std::int64_t>(0, dy), i1 = std::min<std::int64_t>(h, h + dy);
        const auto j0 = std::max<std::int64_t>(0, dx), j1 = std::min<std::int64_t>(w, w + dx);
        expected.slice(0, i0, i1).slice(1, j0, j1).copy_(src.slice(0, i0 - dy, i1 - dy).slice(1, j0 - dx, j1 - dx));
        if (torch::equal(expected, out)) return {dy, dx, mirror == 1};
      }
  ADD_FAILURE() << "the output is no shift (|d| <= 2) of the input or of its mirror image";
  return {0, 0, false};
}

}  // namespace

TEST(Augment, NoneReturnsTheImagesUnchanged) {
  const auto images = numbered(4, 6, 5);
  EXPECT_TRUE(torch::equal(data::augment(images, torch::arange(4), "none"), images));
}

// Every row is an exact shift (and for shift_flip possibly a mirror image) of its input with a black
// border; over many keys every shift in [-2, 2]^2 occurs, each about 1/25 of the time, mirrors about
// half the time, and never with mode "shift". The counts' tolerance: 5 binomial standard deviations.
TEST(Augment, RowsAreShiftedAndMirroredAsTheirKeysSayWithEveryShiftAboutEquallyOften) {
  constexpr std::int64_t kRows = 2000;
  const auto images = numbered(kRows, 7, 6);
  const auto keys = row_keys(Stream(5, Purpose::Augment), 3, 0, kRows, torch::kCPU);
  for (const std::string mode : {"shift", "shift_flip"}) {
    const auto out = data::augment(images, keys, mode);
    ASSERT_EQ(out.sizes(), images.sizes());
    ASSERT_EQ(out.dtype(), torch::kUInt8);
    std::map<std::pair<int, int>, int> shifts;
    int mirrored = 0;
    for (std::int64_t r = 0; r < kRows; ++r) {
      const auto [dy, dx, mirror] = change_of(images[r], out[r]);
      ++shifts[{dy, dx}];
      mirrored += mirror;
    }
    EXPECT_EQ(shifts.size(), 25u) << mode;
    const double p = 1.0 / 25, sd = std::sqrt(kRows * p * (1 - p));
    for (const auto& [shift, count] : shifts)
      EXPECT_NEAR(count, kRows * p, 5 * sd) << mode << " shift (" << shift.first << ", " << shift.second << ")";
    if (mode == "shift") EXPECT_EQ(mirrored, 0);
    else EXPECT_NEAR(mirrored, kRows / 2.0, 5 * std::sqrt(kRows / 4.0));
  }
}

// A row's change depends on its key alone: the same key in another batch, at another position, gives
// the same image (so the ranks' split of a global batch does not change the training).
TEST(Augment, ARowsChangeDependsOnItsKeyAloneNotOnTheBatch) {
  const auto images = numbered(12, 8, 8) ^ torch::arange(12, torch::kUInt8).view({12, 1, 1});
  const auto keys = row_keys(Stream(7, Purpose::Augment), 11, 0, 12, torch::kCPU);
  const auto whole = data::augment(images, keys, "shift_flip");
  const auto part = data::augment(images.slice(0, 5, 9), row_keys(Stream(7, Purpose::Augment), 11, 5, 9, torch::kCPU),
                                  "shift_flip");
  EXPECT_TRUE(torch::equal(part, whole.slice(0, 5, 9)));
  EXPECT_FALSE(torch::equal(data::augment(images, row_keys(Stream(7, Purpose::Augment), 12, 0, 12, torch::kCPU),
                                          "shift_flip"),
                            whole));
}
