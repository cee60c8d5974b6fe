#include "io/run_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include "io/h5.hpp"
#include "util/clock.hpp"
#include "util/error.hpp"
#include "util/host.hpp"

namespace ddpm::io {
namespace {


// The holder's record: "key: value" lines.
std::string record(const std::string& command) {
  const char* job = std::getenv("SLURM_JOB_ID");
  return "host: " + host_name() + "\npid: " + std::to_string(::getpid()) + "\nslurm_job: " + (job ? job : "") +
         "\nstarted: " + now_utc() + "\ncommand: " + command + "\n";
}

std::string field(const std::string& text, const std::string& key) {
  const auto at = text.find(key + ": ");
  if (at == std::string::npos) return "";
  const auto begin = at + key.size() + 2;
  return text.substr(begin, text.find('\n', begin) - begin);
}

std::string read_all(int fd) {
  std::string text;
  char buf[1024];
  off_t offset = 0;
  for (ssize_t n; (n = pread(fd, buf, sizeof buf, offset)) > 0; offset += n) text.append(buf, n);
  return text;
}

std::string describe_holder(const std::string& text) {
  if (text.empty()) return "a run that has not written its record yet";
  std::string out = "process " + field(text, "pid") + " on host " + field(text, "host");
  if (const auto job = field(text, "slurm_job"); !job.empty()) out += " (SLURM job " + job + ")";
  out += ", started " + field(text, "started");
  if (const auto command = field(text, "command"); !command.empty()) out += ": " + command;
  return out;
}

}  // namespace

std::string RunLock::path_in(const std::string& run_dir) { return (std::filesystem::path(run_dir) / "lock").string(); }

RunLock::RunLock(const std::string& run_dir, const std::string& command) {
  create_output_folder(run_dir);
  const auto path = path_in(run_dir);
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0)
    throw Error(path + ": cannot open the run folder's lock (" + std::strerror(errno) +
                "); check that the folder is writable, or set run.out_dir to one that is");
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    const auto holder = read_all(fd_);
    ::close(fd_);
    fd_ = -1;
    if (err == EWOULDBLOCK)
      throw Error(run_dir + " is in use by another run: " + describe_holder(holder) +
                  ". Two runs in one folder would interleave their checkpoints and run.h5; wait for that run "
                  "to end (or stop it), or give this one another run.name or run.out_dir");
    throw Error(path + ": cannot lock the run folder (" + std::strerror(err) +
                "); on a shared file system the folder must support flock across hosts");
  }
  const auto text = record(command);
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, text.data(), text.size(), 0) != static_cast<ssize_t>(text.size())) {
    const int err = errno;
    ::close(fd_);
    throw Error(path + ": cannot write the holder's record (" + std::strerror(err) + "); is the disk full?");
  }
}

RunLock::~RunLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the lock; the record stays, for nobody (a lock is needed to trust it)
}

}  // namespace ddpm::io
