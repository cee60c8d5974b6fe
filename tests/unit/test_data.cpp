#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include <zlib.h>

#include "data/batch_plan.hpp"
#include "data/idx.hpp"
#include "data/mnist.hpp"
#include "util/error.hpp"

using namespace ddpm;
namespace fs = std::filesystem;

namespace {

class IdxFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = fs::temp_directory_path() / ("ddpm_idx_" + std::to_string(::getpid()));
    fs::create_directories(dir);
  }
  void TearDown() override { fs::remove_all(dir); }

  std::string write(const std::string& name, std::vector<unsigned char> header, std::size_t payload) {
    const auto path = (dir / name).string();
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(header.data()), header.size());
    for (std::size_t i = 0; i < payload; ++i) out.put(static_cast<char>(i % 251));
    return path;
  }
  std::string images(const std::string& name, unsigned n, std::size_t payload) {
    return write(name, {0, 0, 8, 3, 0, 0, 0, (unsigned char)n, 0, 0, 0, 28, 0, 0, 0, 28}, payload);
  }
  fs::path dir;
};

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST_F(IdxFiles, ReadsAGoodFile) {
  const auto path = images("good", 3, 3 * 784);
  const auto t = data::read_idx(path, 3);
  EXPECT_EQ(t.sizes(), (std::vector<int64_t>{3, 28, 28}));
  EXPECT_EQ(t.scalar_type(), torch::kUInt8);
  EXPECT_EQ(t[0][0][5].item<int>(), 5);
  EXPECT_EQ(t[2][27][27].item<int>(), int((3 * 784 - 1) % 251));
}

TEST_F(IdxFiles, TruncatedFileNamesExpectedAndFoundSizes) {
  const auto path = images("short", 3, 1200);
  const auto msg = message_of([&] { data::read_idx(path, 3); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("expected 2368 bytes"), std::string::npos) << msg;
  EXPECT_NE(msg.find("found 1216"), std::string::npos) << msg;
  EXPECT_NE(msg.find("launch/setup.sh"), std::string::npos) << msg;
}

TEST_F(IdxFiles, ForeignFileIsRejectedByItsMagic) {
  const auto path = write("foreign.png", {0x89, 'P', 'N', 'G', 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, 100);
  const auto msg = message_of([&] { data::read_idx(path, 3); });
  EXPECT_NE(msg.find("magic 00000803 expected, found 89504e47"), std::string::npos) << msg;
  // A label file read as images: right type, wrong number of dimensions.
  const auto labels = write("labels", {0, 0, 8, 1, 0, 0, 0, 5}, 5);
  EXPECT_NE(message_of([&] { data::read_idx(labels, 3); }).find("found 00000801"), std::string::npos);
}

TEST_F(IdxFiles, EmptyAndMissingFilesGiveClearErrors) {
  const auto empty = write("empty", {}, 0);
  EXPECT_NE(message_of([&] { data::read_idx(empty, 1); }).find("found a file of 0 bytes"), std::string::npos);
  EXPECT_NE(message_of([&] { data::read_idx((dir / "nothing").string(), 1); }).find("cannot open"),
            std::string::npos);
}

TEST_F(IdxFiles, LabelCountMismatchIsReported) {
  images("train-images-idx3-ubyte", 3, 3 * 784);
  write("train-labels-idx1-ubyte", {0, 0, 8, 1, 0, 0, 0, 2}, 2);
  const auto msg = message_of([&] { data::load_dataset(dir.string(), data::Split::Train); });
  EXPECT_NE(msg.find("holds 2 labels but"), std::string::npos) << msg;
}

// Debian's dataset packages ship gzipped IDX files (dataset-fashion-mnist): read as they are.
TEST_F(IdxFiles, AGzippedFileIsReadWhereThePlainOneIsMissing) {
  const auto plain = images("train-images-idx3-ubyte", 3, 3 * 784);
  const auto expected = data::read_idx(plain, 3);
  std::ifstream in(plain, std::ios::binary);
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  gzFile gz = gzopen((plain + ".gz").c_str(), "wb");
  ASSERT_EQ(gzwrite(gz, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
  gzclose(gz);
  fs::remove(plain);
  EXPECT_TRUE(torch::equal(data::read_idx(plain, 3), expected));
  // A damaged archive names the .gz file.
  {
    std::ofstream out(plain + ".gz", std::ios::binary | std::ios::in | std::ios::out);
    out.seekp(40);
    out.write("garbage!garbage!", 16);
  }
  const auto msg = message_of([&] { data::read_idx(plain, 3); });
  EXPECT_NE(msg.find(plain + ".gz"), std::string::npos) << msg;
  fs::remove(plain + ".gz");
  const auto missing = message_of([&] { data::read_idx(plain, 3); });
  EXPECT_NE(missing.find("cannot open the file (nor " + plain + ".gz)"), std::string::npos) << missing;
}

TEST_F(IdxFiles, ImagesOfAnotherSizeAreRefusedByName) {
  write("train-images-idx3-ubyte", {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 32, 0, 0, 0, 32}, 2 * 32 * 32);
  write("train-labels-idx1-ubyte", {0, 0, 8, 1, 0, 0, 0, 2}, 2);
  const auto msg = message_of([&] { data::load_dataset(dir.string(), data::Split::Train); });
  EXPECT_NE(msg.find("images of 32x32 pixels"), std::string::npos) << msg;
}

TEST(Mnist, ModelRangeRoundTripsThroughUint8) {
  auto u8 = torch::arange(0, 256, torch::kLong).to(torch::kUInt8).view({1, 16, 16});
  auto x = data::to_model_range(u8);
  EXPECT_EQ(x.sizes(), (std::vector<int64_t>{1, 1, 16, 16}));
  EXPECT_FLOAT_EQ(x.min().item<float>(), -1.0f);
  EXPECT_FLOAT_EQ(x.max().item<float>(), 1.0f);
  EXPECT_TRUE(torch::equal(data::to_uint8(x), u8));
}

TEST(BatchPlan, EpochIsAPermutationAndRankSlicesTileTheGlobalBatch) {
  data::BatchPlan plan(100, 10, 42);
  EXPECT_EQ(plan.steps_per_epoch(), 10);
  std::vector<torch::Tensor> epoch;
  for (int s = 0; s < 10; ++s) epoch.push_back(plan.indices(s, 0, 1));
  auto all = std::get<0>(torch::cat(epoch).sort());
  EXPECT_TRUE(torch::equal(all, torch::arange(100, torch::kLong)));
  // Two ranks' halves concatenate to the one-rank batch.
  auto halves = torch::cat({plan.indices(13, 0, 2), plan.indices(13, 1, 2)});
  EXPECT_TRUE(torch::equal(halves, plan.indices(13, 0, 1)));
  // Another epoch is another permutation.
  EXPECT_FALSE(torch::equal(plan.indices(3, 0, 1), plan.indices(13, 0, 1)));
  // Unequal slices, as the balancer cuts them, tile it as well.
  auto uneven = torch::cat({plan.rows(13, 0, 3), plan.rows(13, 3, 10)});
  EXPECT_TRUE(torch::equal(uneven, plan.indices(13, 0, 1)));
}
