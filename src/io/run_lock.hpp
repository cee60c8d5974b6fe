// One run per folder: a run holds an exclusive lock on <run>/lock for as long as it writes there,
// so that a second run on the same folder (a resubmitted job while the first still runs, two array
// tasks with one run.name) is refused at start instead of interleaving checkpoints and run.h5.
//
// The lock is flock(2) on the file, which the kernel releases when the holding process ends in any
// way: a lock left by a killed run never blocks its restart. The file also records the holder
// (host, process id, SLURM job, start time, command) for the refusal's message. On a shared file
// system the lock needs flock support across hosts (NFS emulates it with byte-range locks; Lustre
// needs the `flock` mount option).
#pragma once

#include <memory>
#include <string>

namespace ddpm::io {

class RunLock {
 public:
  // Takes the lock of `run_dir` (created if missing) for this process, or throws ddpm::Error
  // naming the folder, the holder and what to do. `command` is recorded for the next one to read.
  RunLock(const std::string& run_dir, const std::string& command);
  ~RunLock();
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

  static std::string path_in(const std::string& run_dir);

 private:
  int fd_ = -1;
};

}  // namespace ddpm::io
