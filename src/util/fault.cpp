#include "util/fault.hpp"

#include <csignal>
#include <cstdlib>
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
  if (p.kind != "throw" && p.kind != "kill" && p.kind != "kill_in_checkpoint" && p.kind != "nan")
    throw Error("DDPM_FAULT='" + s + "': unknown kind '" + p.kind + "'; known: throw, kill, kill_in_checkpoint, nan");
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

void at(Point point, std::int64_t step, int rank) {
  if (!planned_here(step, rank)) return;
  const auto& p = plan();
  const bool in_step = point == Point::TrainStep;
  if (in_step && p->kind == "throw")
    throw std::runtime_error("injected fault (DDPM_FAULT): throw at step " + std::to_string(step));
  if ((in_step && p->kind == "kill") || (!in_step && p->kind == "kill_in_checkpoint")) {
    spdlog::warn("injected fault (DDPM_FAULT): SIGKILL at step {}", step);
    spdlog::default_logger()->flush();
    std::raise(SIGKILL);
  }
}

}  // namespace ddpm::fault
