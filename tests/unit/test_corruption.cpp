// Damage at random, as disks, copies and half-synced file systems do: bytes overwritten anywhere in
// a checkpoint or the classifier file, one damage per seed. Each damaged file must either load
// exactly what was written (the damage hit unused bytes) or be refused with a message; none may
// load other numbers. `--resume auto` must fall back to the next newest checkpoint that verifies.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "config/config.hpp"
#include "eval/classifier_training.hpp"
#include "io/checkpoint.hpp"
#include "io/named_tensors.hpp"
#include "io/verify.hpp"
#include "legacy_h5.hpp"
#include "model/unet.hpp"
#include "tiny_model.hpp"
#include "util/error.hpp"

using namespace ddpm;
namespace fs = std::filesystem;

namespace {

constexpr int kDamages = 60;

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("ddpm_corrupt_" + std::to_string(::getpid()));
  TempDir() { fs::create_directories(path / "checkpoints"); }
  ~TempDir() { fs::remove_all(path); }
};

std::vector<char> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& path, const std::vector<char>& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Damage number `seed`: 1 to 256 bytes, each changed to another value; even seeds one run (a bad
// sector), odd seeds scattered anywhere in the file.
std::vector<char> damaged(std::vector<char> bytes, int seed) {
  std::mt19937_64 rng(static_cast<std::uint64_t>(seed) * 7919 + 17);
  const std::size_t n = 1 + rng() % 256;
  std::size_t at = rng() % bytes.size();
  for (std::size_t i = 0; i < n; ++i) {
    if (seed % 2 == 1) at = rng() % bytes.size();
    bytes[at % bytes.size()] ^= static_cast<char>(1 + rng() % 255);
    ++at;
  }
  return bytes;
}

bool same_bits(const torch::Tensor& a, const torch::Tensor& b) {
  return a.scalar_type() == b.scalar_type() && a.sizes() == b.sizes() &&
         std::memcmp(a.contiguous().data_ptr(), b.contiguous().data_ptr(), a.nbytes()) == 0;
}

// Copies of every tensor a checkpoint holds: model, EMA, Adam's moments and step counts.
struct State {
  std::vector<torch::Tensor> tensors;
  std::vector<std::int64_t> adam_steps;
};

State state_of(model::UNet& live, model::UNet& ema, const io::AdamState& adam) {
  State s;
  for (auto* m : {&live, &ema})
    for (const auto& [name, t] : io::named_tensors(**m)) s.tensors.push_back(t.detach().clone());
  for (const auto* moments : {&adam.exp_avg, &adam.exp_avg_sq})
    for (const auto& [name, t] : *moments) s.tensors.push_back(t.clone());
  s.adam_steps.push_back(adam.steps);
  return s;
}

bool same_state(const State& a, const State& b) {
  if (a.tensors.size() != b.tensors.size() || a.adam_steps != b.adam_steps) return false;
  for (std::size_t i = 0; i < a.tensors.size(); ++i)
    if (!same_bits(a.tensors[i], b.tensors[i])) return false;
  return true;
}

bool same_info(const io::CheckpointInfo& a, const io::CheckpointInfo& b) {
  return a.step == b.step && a.epoch == b.epoch && a.ema_updates == b.ema_updates && a.world_size == b.world_size &&
         a.config_yaml == b.config_yaml;
}

model::UNet seeded_unet(int seed) {
  torch::manual_seed(seed);
  return model::UNet(tiny_model());
}

// A model, its EMA and an optimizer state, all different for each `seed`.
struct Training {
  model::UNet live, ema;
  io::AdamState adam;
  explicit Training(int seed) : live(seeded_unet(seed)), ema(seeded_unet(seed + 1000)) {
    torch::manual_seed(seed + 2000);
    for (const auto& p : live->named_parameters()) {
      adam.exp_avg.emplace_back(p.key(), torch::randn_like(p.value()));
      adam.exp_avg_sq.emplace_back(p.key(), torch::rand_like(p.value()));
    }
    adam.steps = 1 + seed % 3;
  }
  State state() { return state_of(live, ema, adam); }
};

io::CheckpointInfo info_of_step(std::int64_t step) {
  return {step, step / 10, step, 2, "run: {name: corrupt}\nmodel: {base_channels: 8}\n"};
}

struct Counts {
  int unchanged = 0, refused = 0, fell_back = 0, silent = 0;
};

// Prints the counts of loading `what` after every damage; none may be silent, each accounted for.
void expect_loaded_exactly_or_refused(const std::string& what, std::size_t bytes, const Counts& c) {
  std::cout << what << " of " << bytes << " bytes, " << kDamages << " damages: " << c.unchanged << " loaded unchanged, "
            << c.refused << " refused, " << c.silent << " silent\n";
  EXPECT_EQ(c.silent, 0);
  EXPECT_EQ(c.unchanged + c.refused, kDamages);
}

}  // namespace

TEST(Corruption, ADamagedCheckpointLoadsExactlyOrIsRefused) {
  TempDir tmp;
  Training written(1);
  const auto path = io::checkpoint_path(tmp.path.string(), 10);
  io::write_checkpoint(path, *written.live, *written.ema, &written.adam, info_of_step(10));
  const auto pristine = read_bytes(path);
  const auto expected = written.state();
  Counts c;
  for (int seed = 0; seed < kDamages; ++seed) {
    write_bytes(path, damaged(pristine, seed));
    Training loaded(100 + seed);
    const auto before = loaded.state();
    bool accepted = false;
    try {
      const auto info = io::read_checkpoint(path, *loaded.live, *loaded.ema, &loaded.adam);
      accepted = true;
      const bool exact = same_info(info, info_of_step(10)) && same_state(loaded.state(), expected);
      (exact ? c.unchanged : c.silent)++;
      if (!exact) std::cout << "damage " << seed << " loaded silently\n";
    } catch (const io::DamagedFile& e) {
      ++c.refused;
      EXPECT_NE(std::string(e.what()).find(path + ": "), std::string::npos) << e.what();
      // All or nothing: a refused file changed nothing.
      EXPECT_TRUE(same_state(loaded.state(), before)) << "damage " << seed << ": " << e.what();
    }
    // `inspect --verify` agrees with the loader.
    EXPECT_EQ(io::verify_file(path).ok(), accepted) << "damage " << seed << "\n"
                                                     << io::verification_report(path, io::verify_file(path));
  }
  expect_loaded_exactly_or_refused("checkpoint", pristine.size(), c);
}

TEST(Corruption, ADamagedClassifierFileLoadsExactlyOrIsRefused) {
  TempDir tmp;
  const auto path = (tmp.path / "classifier.h5").string();
  torch::manual_seed(3);
  model::Classifier written;
  const auto cfg = config::parse("run: {name: corrupt}\n", "corrupt");
  eval::save_classifier(path, written, 0.987, cfg);
  const auto pristine = read_bytes(path);
  Counts c;
  for (int seed = 0; seed < kDamages; ++seed) {
    write_bytes(path, damaged(pristine, seed));
    torch::manual_seed(100 + seed);
    model::Classifier loaded;
    try {
      const double accuracy = eval::load_classifier(path, loaded, "mnist").test_accuracy;
      bool exact = accuracy == 0.987;
      const auto a = io::named_tensors(*written), b = io::named_tensors(*loaded);
      for (std::size_t i = 0; i < a.size(); ++i) exact = exact && same_bits(a[i].second, b[i].second);
      (exact ? c.unchanged : c.silent)++;
    } catch (const io::DamagedFile& e) {
      ++c.refused;
      EXPECT_NE(std::string(e.what()).find(path + ": "), std::string::npos) << e.what();
    }
  }
  expect_loaded_exactly_or_refused("classifier file", pristine.size(), c);
}

TEST(Corruption, ResumeAutoFallsBackPastADamagedNewestCheckpoint) {
  TempDir tmp;
  const auto run = tmp.path.string();
  Training older(1), newer(2);
  io::write_checkpoint(io::checkpoint_path(run, 10), *older.live, *older.ema, &older.adam, info_of_step(10));
  io::write_checkpoint(io::checkpoint_path(run, 20), *newer.live, *newer.ema, &newer.adam, info_of_step(20));
  const auto newest = io::checkpoint_path(run, 20);
  const auto pristine = read_bytes(newest);
  const auto older_state = older.state(), newer_state = newer.state();
  Counts c;
  for (int seed = 0; seed < kDamages; ++seed) {
    write_bytes(newest, damaged(pristine, seed));
    Training loaded(100 + seed);
    std::vector<std::string> skipped;
    const auto found = io::read_newest_checkpoint(run, *loaded.live, *loaded.ema, &loaded.adam, &skipped);
    ASSERT_TRUE(found.has_value()) << "damage " << seed << ": the intact older checkpoint was not found";
    if (found->path == newest && skipped.empty() && same_info(found->info, info_of_step(20)) &&
        same_state(loaded.state(), newer_state)) {
      ++c.unchanged;
    } else if (found->path == io::checkpoint_path(run, 10) && skipped.size() == 1 &&
               same_info(found->info, info_of_step(10)) && same_state(loaded.state(), older_state)) {
      ++c.fell_back;
      EXPECT_EQ(skipped[0].rfind(newest + ": ", 0), 0u) << skipped[0];
    } else {
      ++c.silent;
    }
  }
  std::cout << "newest checkpoint, " << kDamages << " damages: " << c.unchanged << " loaded unchanged, " << c.fell_back
            << " fell back to the older one, " << c.silent << " silent\n";
  EXPECT_EQ(c.silent, 0);
  EXPECT_GE(c.fell_back, 1);
  EXPECT_EQ(c.unchanged + c.fell_back, kDamages);

  // An incomplete newest file (its writer stopped) is passed over the same way.
  write_bytes(newest, pristine);
  {
    H5::H5File file(newest, H5F_ACC_RDWR);
    file.openGroup("/").removeAttr("complete");
  }
  Training loaded(7);
  std::vector<std::string> skipped;
  const auto found = io::read_newest_checkpoint(run, *loaded.live, *loaded.ema, &loaded.adam, &skipped);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->info.step, 10);
  ASSERT_EQ(skipped.size(), 1u);
  EXPECT_NE(skipped[0].find("incomplete"), std::string::npos) << skipped[0];
}

// Flips one byte inside a known tensor's data: verify names that dataset alone, the loader refuses
// the file naming it.
TEST(Corruption, VerifyNamesTheDamagedDataset) {
  TempDir tmp;
  Training written(1);
  const auto path = io::checkpoint_path(tmp.path.string(), 10);
  io::write_checkpoint(path, *written.live, *written.ema, &written.adam, info_of_step(10));
  const auto clean = io::verify_file(path);
  EXPECT_TRUE(clean.ok()) << io::verification_report(path, clean);
  EXPECT_TRUE(clean.checksummed);
  EXPECT_EQ(clean.unprotected, 0);
  EXPECT_GT(clean.datasets, 100);
  EXPECT_NE(io::verification_report(path, clean).find("every checksum matches"), std::string::npos);

  // The largest weight of the model, found by its bytes in the file.
  std::string name;
  torch::Tensor target;
  for (const auto& [key, t] : io::named_tensors(*written.live))
    if (!target.defined() || t.numel() > target.numel()) name = key, target = t;
  auto bytes = read_bytes(path);
  const auto* data = static_cast<const char*>(target.data_ptr());
  const auto at = std::search(bytes.begin(), bytes.end(), data, data + 64);
  ASSERT_NE(at, bytes.end());
  *(at + 32) ^= 0x10;
  write_bytes(path, bytes);

  const auto v = io::verify_file(path);
  ASSERT_EQ(v.problems.size(), 1u) << io::verification_report(path, v);
  EXPECT_EQ(v.problems[0].rfind("/model/" + name + ": ", 0), 0u) << v.problems[0];
  EXPECT_NE(io::verification_report(path, v).find("DAMAGED"), std::string::npos);
  Training loaded(5);
  try {
    io::read_checkpoint(path, *loaded.live, *loaded.ema, &loaded.adam);
    FAIL() << "a checkpoint with a damaged weight was loaded";
  } catch (const io::DamagedFile& e) {
    const std::string msg = e.what();
    std::cout << msg << "\n" << io::verification_report(path, v);
    EXPECT_NE(msg.find(path + ": does not verify: /model/" + name), std::string::npos) << msg;
    EXPECT_NE(msg.find("Fletcher32"), std::string::npos) << msg;
    EXPECT_NE(msg.find("inspect --verify"), std::string::npos) << msg;
  }
}

// Files written before checksums load as before and say so; the same damages that the new format
// refuses load silently from them, which is why the format changed.
TEST(Corruption, AFileWrittenBeforeChecksumsLoadsAndSaysSo) {
  TempDir tmp;
  Training written(1);
  const auto path = (tmp.path / "legacy.h5").string();
  write_legacy_checkpoint(path, *written.live, *written.ema, info_of_step(10));
  Training loaded(9);
  const auto info = io::read_checkpoint(path, *loaded.live, *loaded.ema);
  EXPECT_FALSE(info.checksummed);
  const auto a = io::named_tensors(*written.live), b = io::named_tensors(*loaded.live);
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(same_bits(a[i].second, b[i].second)) << a[i].first;
  const auto v = io::verify_file(path);
  EXPECT_TRUE(v.ok());
  EXPECT_FALSE(v.checksummed);
  EXPECT_NE(io::verification_report(path, v).find("carries no checksums"), std::string::npos);

  const auto pristine = read_bytes(path);
  int silent = 0;
  for (int seed = 0; seed < kDamages; ++seed) {
    write_bytes(path, damaged(pristine, seed));
    Training target(200 + seed);
    try {
      io::read_checkpoint(path, *target.live, *target.ema);
      const auto got = io::named_tensors(*target.live);
      bool exact = true;
      for (std::size_t i = 0; i < a.size(); ++i) exact = exact && same_bits(a[i].second, got[i].second);
      silent += !exact;
    } catch (const std::exception&) {
    }
  }
  std::cout << "the same " << kDamages << " damages to a checkpoint without checksums: " << silent
            << " loaded other weights silently\n";
  EXPECT_GT(silent, 0);
}
