// `ddpm_dist inspect --verify`: reads back every dataset and attribute of an HDF5 file, so that
// HDF5 checks every checksum the file holds, and lists what fails.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ddpm::io {

struct Verification {
  bool checksummed = false;        // HDF5 metadata checksums (superblock version 2 or later)
  std::int64_t datasets = 0;       // datasets read
  std::int64_t attributes = 0;     // attributes read
  std::int64_t unprotected = 0;    // datasets without a checksum of their own (contiguous, no Fletcher32)
  std::vector<std::string> problems;  // "/group/name: what failed", one per object that failed
  bool ok() const { return problems.empty(); }
};

Verification verify_file(const std::string& path);

// The report `inspect --verify` prints.
std::string verification_report(const std::string& path, const Verification& v);

}  // namespace ddpm::io
