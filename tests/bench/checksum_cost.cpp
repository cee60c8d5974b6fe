// What checksums cost on a real model's checkpoint: the time to write (in memory, to disk, fsync,
// rename) and to read back the model and EMA of CONFIG's U-Net, checksummed (Fletcher32 on chunked
// datasets, HDF5 1.10 format) against the same data in contiguous datasets without checksums, and
// the time of `inspect --verify`. Medians and ranges of REPEATS alternating runs.
//   build/tests/bench_checksums CONFIG [REPEATS] [FOLDER]
#include <H5Cpp.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>

#include "config/config.hpp"
#include "io/checkpoint.hpp"
#include "io/h5.hpp"
#include "io/verify.hpp"
#include "model/unet.hpp"
#include "../unit/legacy_h5.hpp"

using namespace ddpm;
namespace fs = std::filesystem;

namespace {

struct Times {
  std::vector<double> ms;
  void add(const std::function<void()>& f) {
    const auto a = std::chrono::steady_clock::now();
    f();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count());
  }
  double median() const {
    auto v = ms;
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  }
  std::string text() const {
    char out[96];
    std::snprintf(out, sizeof out, "%8.1f ms (%.1f-%.1f)", median(), *std::min_element(ms.begin(), ms.end()),
                  *std::max_element(ms.begin(), ms.end()));
    return out;
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CONFIG [REPEATS] [FOLDER]\n", argv[0]);
    return 2;
  }
  const auto cfg = config::load(argv[1], {});
  const int repeats = argc > 2 ? std::atoi(argv[2]) : 9;
  const fs::path dir = argc > 3 ? fs::path(argv[3]) : fs::temp_directory_path() / "ddpm_bench_checksums";
  fs::create_directories(dir);
  torch::set_num_threads(1);
  model::UNet live(cfg.model), ema(cfg.model), into(cfg.model), into_ema(cfg.model);
  const io::CheckpointInfo info{1, 0, 1, 1, cfg.yaml};
  const auto plain = (dir / "plain.h5").string(), summed = (dir / "checksummed.h5").string();
  Times write_plain, write_summed, read_plain, read_summed, verify;
  for (int i = 0; i < repeats; ++i) {
    write_plain.add([&] {
      io::write_atomically(plain, [&](H5::H5File& f) { fill_legacy_checkpoint(f, *live, *ema, info); });
    });
    write_summed.add([&] { io::write_checkpoint(summed, *live, *ema, nullptr, info); });
    read_plain.add([&] { io::read_checkpoint(plain, *into, *into_ema); });
    read_summed.add([&] { io::read_checkpoint(summed, *into, *into_ema); });
    verify.add([&] {
      if (!io::verify_file(summed).ok()) throw std::runtime_error("verification failed");
    });
  }
  std::printf("%s: U-Net of %lld parameters, model + EMA; files of %.2f MB (plain) and %.2f MB (checksummed); %d "
              "repeats, median (min-max)\n",
              argv[1], static_cast<long long>(live->parameter_count()), fs::file_size(plain) / 1e6,
              fs::file_size(summed) / 1e6, repeats);
  std::printf("  write  plain %s  checksummed %s  ratio %.2f\n", write_plain.text().c_str(), write_summed.text().c_str(),
              write_summed.median() / write_plain.median());
  std::printf("  read   plain %s  checksummed %s  ratio %.2f\n", read_plain.text().c_str(), read_summed.text().c_str(),
              read_summed.median() / read_plain.median());
  std::printf("  inspect --verify of the checksummed file %s\n", verify.text().c_str());
  fs::remove_all(dir);
  return 0;
}
