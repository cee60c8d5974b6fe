// The checks of a parsed configuration: every impossible value and combination is refused with
// the file, the key, the value and what to do.
#pragma once

#include "config/config.hpp"

namespace ddpm::config {

// Throws Error naming the first key whose value cannot run.
void validate(const Config& c);

}  // namespace ddpm::config
