// Clean-up after a failure that must not replace the failure: a CUDA graph's capture_end() after
// the captured body threw fails too (the capture is invalid by then), and its error says nothing
// of the cause.
#pragma once

#include <exception>
#include <utility>

namespace ddpm::util {

// Runs `body`; if it throws, runs `cleanup` and rethrows what `body` threw, whatever `cleanup`
// throws (that is dropped: it follows from the first).
template <class Body, class Cleanup>
void on_error_cleanup(Body&& body, Cleanup&& cleanup) {
  std::exception_ptr first;
  try {
    std::forward<Body>(body)();
    return;
  } catch (...) {
    first = std::current_exception();
  }
  try {
    std::forward<Cleanup>(cleanup)();
  } catch (...) {
  }
  std::rethrow_exception(first);
}

}  // namespace ddpm::util
