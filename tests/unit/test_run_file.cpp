#include <H5Cpp.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <sys/resource.h>

#include <csignal>
#include <filesystem>
#include <fstream>

#include "io/checkpoint.hpp"
#include "io/h5.hpp"
#include "io/inspect.hpp"
#include "io/run_file.hpp"
#include "io/verify.hpp"
#include "util/error.hpp"

using namespace ddpm;
namespace fs = std::filesystem;

namespace {
struct TempDir {
  fs::path path = fs::temp_directory_path() / ("ddpm_run_" + std::to_string(::getpid()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
};
io::MetricsRow row(double step) { return {step, 1.0 / step, 1e-3, 0.5, 100.0, step * 2}; }
}  // namespace

TEST(RunFile, MetricsAppendAndResumeWithoutGapOrDuplicate) {
  TempDir tmp;
  const auto path = (tmp.path / "run.h5").string();
  io::write_run_config(path, "run: {name: x}\n", 2);
  io::append_train_metrics(path, {row(10), row(20)});
  io::append_train_metrics(path, {row(30)});
  auto rows = io::read_train_metrics(path);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[2].step, 30);
  EXPECT_DOUBLE_EQ(rows[1].loss, 1.0 / 20);
  // A resume from the checkpoint of step 20 drops the row of step 30, then appends again.
  io::truncate_train_metrics(path, 20);
  io::append_train_metrics(path, {row(30), row(40)});
  rows = io::read_train_metrics(path);
  ASSERT_EQ(rows.size(), 4u);
  for (std::size_t i = 0; i < rows.size(); ++i) EXPECT_EQ(rows[i].step, 10.0 * (i + 1));
  // No temporary file is left behind.
  for (const auto& e : fs::directory_iterator(tmp.path)) EXPECT_EQ(e.path().filename(), "run.h5");
}

TEST(RunFile, SamplesAndSummary) {
  TempDir tmp;
  const auto path = (tmp.path / "run.h5").string();
  io::write_run_config(path, "run: {name: demo, seed: 4}\ntrain: {steps: 40, batch_size: 8, lr: 0.001}\n", 1);
  io::append_train_metrics(path, {row(10), row(20), row(40)});
  io::write_samples(path, torch::zeros({5, 28, 28}, torch::kUInt8), {"ddim", 50, 0.0, true, 40, 4, {}, 0.0, 0.0, ""});
  io::write_samples(path, torch::ones({6, 28, 28}, torch::kUInt8), {"ddpm", 1000, 0.0, false, 40, 4, {}, 0.0, 0.0, ""});
  const auto text = io::describe(path);
  EXPECT_NE(text.find("run demo (seed 4)"), std::string::npos) << text;
  EXPECT_NE(text.find("loss: last 0.0250 (step 40), best 0.0250 (step 40), first 0.1000"), std::string::npos) << text;
  EXPECT_NE(text.find("samples: 6 images, ddpm with 1000 steps"), std::string::npos) << text;
  EXPECT_NE(text.find("raw weights of step 40"), std::string::npos) << text;
}

// A conditional model's samples keep their classes, and its evaluation a group per guidance weight
// that inspect lists in the order of the weights.
TEST(RunFile, ConditionalSamplesAndEvaluationsRoundTrip) {
  TempDir tmp;
  const auto path = (tmp.path / "run.h5").string();
  io::write_run_config(path, "run: {name: demo, seed: 4}\n", 1);
  const auto labels = torch::tensor({7, 7, 3}, torch::kLong);
  io::write_samples(path, torch::zeros({3, 28, 28}, torch::kUInt8), {"heun", 19, 0.0, true, 40, 4, labels, 2.0, 0.0, ""});
  io::EvalRecord r;
  r.weights = "ema";
  r.conditional = true;
  r.guided = true;
  r.class_histogram = std::vector<std::int64_t>(10, 0);
  r.gen_features = torch::zeros({3, 4});
  r.labels_pred = torch::tensor({7, 1, 3}, torch::kLong);
  r.labels_asked = labels;
  r.class_accuracy = std::vector<double>(10, std::nan(""));
  for (double w : {2.0, 0.5}) {
    r.guidance = w;
    r.cond_accuracy = w / 4;
    io::write_eval(path, torch::zeros({4}, torch::kFloat64), torch::eye(4, torch::kFloat64), 10, r);
  }
  auto file = io::open_read(path);
  EXPECT_TRUE(torch::equal(io::read_tensor(file.openGroup("samples"), "labels"), labels));
  EXPECT_EQ(io::eval_group(r), "eval/ema/guidance_0.5");
  EXPECT_DOUBLE_EQ(io::read_tensor(file.openGroup("eval/ema/guidance_2"), "cond_accuracy").item<double>(), 0.5);
  EXPECT_TRUE(torch::equal(io::read_tensor(file.openGroup("eval/ema/guidance_0.5"), "labels_asked"), labels));
  const auto text = io::describe(path);
  const auto low = text.find("ema guidance 0.5: FID"), high = text.find("ema guidance 2: FID");
  ASSERT_NE(low, std::string::npos) << text;
  ASSERT_NE(high, std::string::npos) << text;
  EXPECT_LT(low, high) << text;
  EXPECT_NE(text.find("conditional accuracy 50.00%"), std::string::npos) << text;
}

TEST(RunFile, ForeignHdf5IsNamed) {
  TempDir tmp;
  const auto path = (tmp.path / "other.h5").string();
  { H5::H5File f(path, H5F_ACC_TRUNC); }
  try {
    io::describe(path);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("neither a ddpm_dist run file, a checkpoint, a latent cache nor a post-hoc EMA snapshot"), std::string::npos);
  }
}

// A write that fails part-way, here at a file size limit (what a full disk does to the last blocks,
// close included), throws with the path, leaves no temporary file and keeps the previous file.
TEST(AtomicWrite, AWriteThatFailsPartWayKeepsThePreviousFile) {
  TempDir tmp;
  const auto path = (tmp.path / "state.h5").string();
  io::write_atomically(path, [](H5::H5File& f) {
    auto root = f.openGroup("/");
    io::write_tensor(root, "x", torch::ones({4}));
  });
  const auto before = fs::file_size(path);
  std::signal(SIGXFSZ, SIG_IGN);
  rlimit old{};
  getrlimit(RLIMIT_FSIZE, &old);
  rlimit small = old;
  small.rlim_cur = 64 * 1024;
  setrlimit(RLIMIT_FSIZE, &small);
  std::string message = "no error";
  try {
    io::write_atomically(path, [](H5::H5File& f) {
      auto root = f.openGroup("/");
      io::write_tensor(root, "x", torch::zeros({1 << 20}));
    });
  } catch (const Error& e) {
    message = e.what();
  }
  setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, SIG_DFL);
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_NE(message.find("the previous file is kept"), std::string::npos) << message;
  EXPECT_EQ(fs::file_size(path), before);
  auto file = io::open_read(path);
  EXPECT_TRUE(torch::equal(io::read_tensor(file.openGroup("/"), "x"), torch::ones({4})));
  for (const auto& e : fs::directory_iterator(tmp.path)) EXPECT_EQ(e.path().filename(), "state.h5");
}

// The history of evaluations during training: rows and grids stay in step, and a resume cuts both.
TEST(RunFile, EvalHistoryAppendsReadsAndTruncatesRowsWithTheirGrids) {
  TempDir tmp;
  const auto path = (tmp.path / "run.h5").string();
  io::write_run_config(path, "run: {name: x}\n", 1);
  for (int k = 1; k <= 3; ++k)
    io::append_eval_history(path, {100.0 * k, 10.0 * k, 50.0 / k, 5.0, 0.9, 1.0, 2.0, 0.5, 7.0 * k},
                            torch::full({122, 122}, k, torch::kUInt8), "0123456789abcdef");
  auto rows = io::read_eval_history(path);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_DOUBLE_EQ(rows[2].step, 300);
  EXPECT_DOUBLE_EQ(rows[1].fid, 25.0);
  EXPECT_DOUBLE_EQ(rows[0].train_wall_s, 10.0);
  EXPECT_DOUBLE_EQ(rows[2].kid, 21.0);
  EXPECT_DOUBLE_EQ(rows[1].fid_se, 0.5);
  EXPECT_EQ(io::read_attr_string(io::open_read(path).openGroup("eval_history"), "classifier_fingerprint"),
            "0123456789abcdef");
  auto grids = [&] {
    auto file = io::open_read(path);
    return io::read_tensor(file.openGroup("eval_history"), "grids");
  };
  EXPECT_EQ(grids().sizes(), (std::vector<int64_t>{3, 122, 122}));
  EXPECT_EQ(grids()[2][0][0].item<int>(), 3);
  // Resuming from the checkpoint of step 200 drops the evaluation of step 300 and its grid.
  io::truncate_eval_history(path, 200);
  rows = io::read_eval_history(path);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_DOUBLE_EQ(rows.back().step, 200);
  EXPECT_EQ(grids().size(0), 2);
  io::append_eval_history(path, {300, 30, 1, 5, 0.9, 1, 2}, torch::full({122, 122}, 9, torch::kUInt8),
                          "0123456789abcdef");
  EXPECT_EQ(io::read_eval_history(path).size(), 3u);
  EXPECT_EQ(grids()[2][0][0].item<int>(), 9);
  const auto summary = io::describe(path);
  EXPECT_NE(summary.find("evaluations during training: 3"), std::string::npos) << summary;
  EXPECT_NE(summary.find("best: step 300"), std::string::npos) << summary;
}

// A damaged run.h5 is set aside and rebuilt from the checkpoint's /history: the training rows, the
// evaluations with their grids and the classifier's fingerprint; the rebuilt file takes further
// rows and evaluations as the original did. A run.h5 that verifies is left alone.
TEST(RunFile, ADamagedRunFileIsRebuiltFromTheCheckpointsHistory) {
  TempDir tmp;
  const auto run_dir = tmp.path.string();
  const auto path = io::run_file_path(run_dir);
  io::write_run_config(path, "run: {name: x}\n", 1);
  io::append_train_metrics(path, {row(10), row(20)});
  for (int k = 1; k <= 2; ++k)
    io::append_eval_history(path, {10.0 * k, 1.0 * k, 40.0 / k, 5.0, 0.9, 1.0, 2.0},
                            torch::full({122, 122}, k, torch::kUInt8), "0123456789abcdef");
  const auto checkpoint = (tmp.path / "step_20.h5").string();
  torch::nn::Linear net(2, 2), ema(2, 2);
  io::CheckpointInfo info;
  info.step = 20;
  auto history = io::read_run_history(path);
  io::write_checkpoint(checkpoint, *net, *ema, nullptr, info, nullptr, &history);
  EXPECT_EQ(io::recover_run_file(run_dir, checkpoint), "") << "a run.h5 that verifies is left alone";

  // 64 bytes of the second half overwritten, where /eval_history's data lie.
  {
    const auto size = fs::file_size(path);
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(size * 3 / 4));
    const std::string garbage(64, '\x5a');
    f.write(garbage.data(), 64);
  }
  ASSERT_FALSE(io::verify_file(path).ok()) << "the damage must be one HDF5 sees";
  const auto warning = io::recover_run_file(run_dir, checkpoint);
  EXPECT_NE(warning.find("does not verify"), std::string::npos) << warning;
  EXPECT_NE(warning.find("2 rows of training metrics, 2 evaluations"), std::string::npos) << warning;
  EXPECT_TRUE(io::verify_file(path).ok());
  std::size_t aside = 0;
  for (const auto& e : fs::directory_iterator(tmp.path)) aside += e.path().filename().string().rfind("run.h5.damaged-", 0) == 0;
  EXPECT_EQ(aside, 1u);

  const auto rebuilt = io::read_run_history(path);
  ASSERT_EQ(rebuilt.train.size(), 2u);
  EXPECT_DOUBLE_EQ(rebuilt.train[1].loss, 1.0 / 20);
  ASSERT_EQ(rebuilt.evals.size(), 2u);
  EXPECT_DOUBLE_EQ(rebuilt.evals[1].fid, 20.0);
  EXPECT_EQ(rebuilt.classifier, "0123456789abcdef");
  EXPECT_TRUE(torch::equal(rebuilt.grids, history.grids));
  // The run goes on in the rebuilt file.
  io::append_train_metrics(path, {row(30)});
  io::append_eval_history(path, {30, 3, 10, 5, 0.9, 1, 2}, torch::full({122, 122}, 7, torch::kUInt8), "0123456789abcdef");
  const auto after = io::read_run_history(path);
  EXPECT_EQ(after.train.size(), 3u);
  EXPECT_EQ(after.grids.size(0), 3);
}
