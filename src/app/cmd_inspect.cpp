#include <cstdio>

#include "app/commands.hpp"
#include "io/inspect.hpp"
#include "io/verify.hpp"

namespace ddpm::app {

int cmd_inspect(const std::string& path, bool verify) {
  if (!verify) {
    std::fputs(io::describe(path).c_str(), stdout);
    return 0;
  }
  const auto v = io::verify_file(path);
  std::fputs(io::verification_report(path, v).c_str(), stdout);
  return v.ok() ? 0 : 1;
}

}  // namespace ddpm::app
