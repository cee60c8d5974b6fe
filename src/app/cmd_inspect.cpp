#include <cstdio>

#include "app/commands.hpp"
#include "io/inspect.hpp"

namespace ddpm::app {

void cmd_inspect(const std::string& path) { std::fputs(io::describe(path).c_str(), stdout); }

}  // namespace ddpm::app
