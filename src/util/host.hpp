#pragma once

#include <unistd.h>

#include <string>

namespace ddpm {

// This machine's host name (a UTS namespace's own, where the process runs in one).
inline std::string host_name() {
  char host[256] = "";
  gethostname(host, sizeof host - 1);
  return host;
}

}  // namespace ddpm
