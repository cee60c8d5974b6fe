// MPI return codes as exceptions. Context sets MPI_ERRORS_RETURN on MPI_COMM_WORLD (and the
// communicators derived from it inherit it), so a failed call returns here instead of ending the job
// inside MPI, and the error reaches the rank's log with the call that failed.
#pragma once

#include <mpi.h>

#include <stdexcept>
#include <string>

namespace ddpm::dist {

inline void mpi_check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  throw std::runtime_error(std::string(what) + " failed: " + std::string(msg, len));
}

}  // namespace ddpm::dist
