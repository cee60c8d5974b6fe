#pragma once

#include <stdexcept>
#include <string>

namespace ddpm {

// An error caused by user input (a file, a key, a value). Its message says what, where and what
// to do; the top level prints it without a stack trace.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace ddpm
