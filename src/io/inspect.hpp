// A readable summary of any file this project writes (run.h5 or a checkpoint).
#pragma once

#include <string>

namespace ddpm::io {

std::string describe(const std::string& path);

}  // namespace ddpm::io
