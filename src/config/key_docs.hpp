// The configuration reference, one row per key (or group of keys) of the key table.
#pragma once

#include <string>
#include <vector>

namespace ddpm::config {

struct KeyDoc {
  std::vector<std::string> keys;  // "section.key", in the key table's order
  std::string shown_default;      // empty: rendered from the default Config
  std::string meaning;
};

const std::vector<KeyDoc>& key_docs();
// The reference as a markdown table (`ddpm_dist keys`, the README's "Configuration reference").
// Throws Error where a key is not documented, documented twice, or not a key.
std::string reference_table();

}  // namespace ddpm::config
