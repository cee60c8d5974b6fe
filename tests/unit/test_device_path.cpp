// A training step on the device path makes no host wait for the communicator (docs/distributed.md,
// "Waiting on the stream"): with the double of late_world.hpp, whose reductions complete late and
// leave NaN until they do, two ranks (threads) train a tiny U-Net. During the steps every wait is a
// stream wait and none blocks the host; the agreements' reading is the one host wait; and the
// steps are those of one process on the whole batch (no step skipped, losses and Adam's first
// moment equal to the one-rank run's).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <thread>

#include "late_world.hpp"
#include "tiny_run.hpp"
#include "train/trainer.hpp"

using namespace ddpm;
namespace fs = std::filesystem;

namespace {

struct Outcome {
  std::vector<train::StepStats> steps;
  torch::Tensor exp_avg;
  int host_waits_in_steps = -1, host_waits_after = -1, stream_waits = -1;
};

constexpr int kSteps = 3;

Outcome one_process(const config::Config& cfg) {
  dist::SelfCommunicator self;
  train::Trainer trainer(cfg, mnist(), torch::kCPU, self);
  for (int i = 0; i < kSteps; ++i) trainer.train_step();
  return {trainer.read_agreements(), trainer.optimizer().exp_avg().clone()};
}

double relative(const torch::Tensor& a, const torch::Tensor& b) { return ((a - b).norm() / b.norm()).item<double>(); }

}  // namespace

TEST(DevicePath, AStepMakesNoHostWaitAndTheGradientsAreThoseOfTheWholeBatch) {
  const auto out = fs::temp_directory_path() / ("ddpm_device_path_" + std::to_string(::getpid()));
  auto cfg = tiny_config(out.string());
  cfg.train.bucket_mb = 0.01;  // several buckets, so several reductions in flight
  const auto reference = one_process(cfg);

  late::ThreadWorld interconnect(2, late::Completion::AfterDelivery, 0.01);
  std::vector<Outcome> runs(2);
  // Built one after the other: the model's initialisation draws from the shared default generator.
  std::vector<std::unique_ptr<late::LateCommunicator>> comms;
  for (int r = 0; r < 2; ++r) comms.push_back(std::make_unique<late::LateCommunicator>(interconnect, r));
  std::vector<std::thread> ranks;
  for (int r = 0; r < 2; ++r)
    ranks.emplace_back([&, r] {
      auto& comm = *comms[r];
      train::Trainer trainer(cfg, mnist(), torch::kCPU, comm);
      const int before = comm.host_waits();
      for (int i = 0; i < kSteps; ++i) trainer.train_step();
      runs[r].host_waits_in_steps = comm.host_waits() - before;
      runs[r].stream_waits = comm.stream_waits();
      runs[r].steps = trainer.read_agreements();
      runs[r].host_waits_after = comm.host_waits() - before;
      runs[r].exp_avg = trainer.optimizer().exp_avg().clone();
    });
  for (auto& t : ranks) t.join();
  fs::remove_all(out);

  for (int r = 0; r < 2; ++r) {
    const auto& run = runs[r];
    EXPECT_EQ(run.host_waits_in_steps, 0) << "rank " << r;
    EXPECT_EQ(run.host_waits_after, 1) << "rank " << r << ": the agreements' reading waits once";
    EXPECT_GT(run.stream_waits, kSteps) << "rank " << r << ": buckets and agreements wait on the stream";
    ASSERT_EQ(run.steps.size(), std::size_t{kSteps});
    for (int i = 0; i < kSteps; ++i) {
      EXPECT_FALSE(run.steps[i].skipped) << "rank " << r << " step " << i + 1 << ": a NaN was read before delivery";
      // float32 sums of 16 + 16 rows instead of 32: rounding, ~1e-7 relative; 1e-5 allowed.
      EXPECT_NEAR(run.steps[i].loss, reference.steps[i].loss, 1e-5 * reference.steps[i].loss) << "step " << i + 1;
    }
    // Adam's first moment holds the steps' (clipped) averaged gradients.
    const double error = relative(run.exp_avg, reference.exp_avg);
    std::cout << "rank " << r << ": Adam's first moment vs one process, relative error " << error << "\n";
    EXPECT_LT(error, 1e-4);
  }
}
