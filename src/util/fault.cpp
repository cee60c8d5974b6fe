#include "util/fault.hpp"

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <thread>
#include <optional>
#include <stdexcept>
#include <string>

#include <spdlog/spdlog.h>

#include "util/error.hpp"

namespace ddpm::fault {
namespace {

struct Plan {
  std::string kind;
  std::int64_t step = -1;
  int rank = -1;  // -1: every rank
};

std::optional<Plan> parse(const char* text) {
  if (!text || !*text) return std::nullopt;
  const std::string s(text);
  const auto at = s.find('@');
  if (at == std::string::npos)
    throw Error("DDPM_FAULT='" + s + "': expected KIND@STEP[:RANK], e.g. throw@5:1");
  Plan p;
  p.kind = s.substr(0, at);
  static const std::set<std::string> kinds{"throw",           "kill",      "hang",
                                            "kill_in_checkpoint", "kill_in_run_file", "disk_full",
                                            "disk_full_run_file", "nan",       "slow",
                                            "inf_grad_norm",      "slow_checkpoint"};
  if (!kinds.count(p.kind)) {
    std::string known;
    for (const auto& k : kinds) known += (known.empty() ? "" : ", ") + k;
    throw Error("DDPM_FAULT='" + s + "': unknown kind '" + p.kind + "'; known: " + known);
  }
  const auto colon = s.find(':', at);
  try {
    p.step = std::stoll(s.substr(at + 1, colon - at - 1));
    if (colon != std::string::npos) p.rank = std::stoi(s.substr(colon + 1));
  } catch (const std::exception&) {
    throw Error("DDPM_FAULT='" + s + "': STEP and RANK must be integers");
  }
  return p;
}

const std::optional<Plan>& plan() {
  static const std::optional<Plan> p = parse(std::getenv("DDPM_FAULT"));
  return p;
}

}  // namespace

namespace {
bool planned_here(std::int64_t step, int rank) {
  const auto& p = plan();
  return p && p->step == step && (p->rank < 0 || p->rank == rank);
}
}  // namespace

bool nan_loss(std::int64_t step, int rank) { return planned_here(step, rank) && plan()->kind == "nan"; }

bool poisoned_grad_norm(std::int64_t step, int rank) {
  return planned_here(step, rank) && plan()->kind == "inf_grad_norm";
}

void slow_down(std::int64_t step, int rank, double compute_seconds) {
  const auto& p = plan();
  if (p && p->kind == "slow" && step >= p->step && (p->rank < 0 || p->rank == rank))
    std::this_thread::sleep_for(std::chrono::duration<double>(compute_seconds));
}

void at(Point point, std::int64_t step, int rank) {
  if (!planned_here(step, rank)) return;
  const auto& kind = plan()->kind;
  const auto here = [&](Point where, const char* name) { return point == where && kind == name; };
  if (here(Point::TrainStep, "throw"))
    throw std::runtime_error("injected fault (DDPM_FAULT): throw at step " + std::to_string(step));
  if (here(Point::TrainStep, "kill") || here(Point::CheckpointWrite, "kill_in_checkpoint") ||
      here(Point::RunFileWrite, "kill_in_run_file")) {
    spdlog::warn("injected fault (DDPM_FAULT): SIGKILL at step {}", step);
    spdlog::default_logger()->flush();
    std::raise(SIGKILL);
  }
  if (here(Point::TrainStep, "hang")) {
    spdlog::warn("injected fault (DDPM_FAULT): hanging at step {}", step);
    spdlog::default_logger()->flush();
    for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
  }
  if (here(Point::CheckpointWrite, "slow_checkpoint")) {
    spdlog::warn("injected fault (DDPM_FAULT): the checkpoint of step {} takes 3 s longer", step);
    std::this_thread::sleep_for(std::chrono::seconds(3));
  }
  if (here(Point::CheckpointWrite, "disk_full") || here(Point::RunFileWrite, "disk_full_run_file"))
    throw std::filesystem::filesystem_error("injected fault (DDPM_FAULT): write",
                                            std::make_error_code(std::errc::no_space_on_device));
}

}  // namespace ddpm::fault
