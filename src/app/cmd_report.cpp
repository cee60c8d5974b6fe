#include <spdlog/spdlog.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "app/commands.hpp"
#include "util/error.hpp"

extern char** environ;

namespace ddpm::app {
namespace {

namespace fs = std::filesystem;

// The page is drawn by tools/report.py (matplotlib draws the curves): installed beside the binary
// as <prefix>/share/ddpm_dist/report.py, or in the source tree of a build that was not installed.
std::string report_script(std::string* looked) {
  std::vector<fs::path> candidates;
  std::error_code ec;
  const auto exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) candidates.push_back(exe.parent_path().parent_path() / "share/ddpm_dist/report.py");
  candidates.push_back(fs::path(DDPM_SOURCE_DIR) / "tools/report.py");
  for (const auto& c : candidates) {
    if (fs::exists(c, ec)) return c.string();
    if (looked) *looked += (looked->empty() ? "" : ", ") + c.string();
  }
  return "";
}

// Runs `script args...` and waits; its standard output goes to /dev/null when `quiet`. Returns its
// exit status (128 + the signal that ended it). posix_spawn rather than fork: an MPI process may
// hold registered memory that a forked copy must not touch.
int run_script(const std::string& script, const std::vector<std::string>& args, bool quiet) {
  std::vector<std::string> all{script};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (quiet) posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  const int err = posix_spawn(&pid, script.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (err != 0) throw Error(script + ": cannot be started: " + std::strerror(err));
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) throw Error(script + ": lost track of it: " + std::strerror(errno));
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

int cmd_report(const std::vector<std::string>& runs, const std::string& out) {
  std::string looked;
  const auto script = report_script(&looked);
  if (script.empty())
    throw Error("report: tools/report.py is not installed (looked for " + looked +
                "); install ddpm_dist again (launch/setup.sh) or run tools/report.py from a clone");
  auto args = runs;
  if (!out.empty()) args.insert(args.end(), {"--out", out});
  return run_script(script, args, false);
}

void write_report(const std::string& run_dir) {
  const auto start = std::chrono::steady_clock::now();
  const auto page = run_dir + "/report.html";
  std::string why, looked;
  try {
    const auto script = report_script(&looked);
    if (script.empty()) why = "tools/report.py is not installed (looked for " + looked + ")";
    else if (const int status = run_script(script, {run_dir}, true); status != 0)
      why = script + " exited with status " + std::to_string(status) + " (its message is above)";
  } catch (const Error& e) {
    why = e.what();
  }
  if (!why.empty()) {
    spdlog::warn("report: {} not written: {}; every result is in run.h5, and `ddpm_dist report {}` writes the page",
                 page, why, run_dir);
    return;
  }
  spdlog::info("report: {} ({:.1f} s; open it in a browser)", page,
               std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
}

}  // namespace ddpm::app
