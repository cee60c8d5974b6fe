// GoogleTest under mpirun: every rank runs every test; only rank 0 prints, and a failure on any
// rank fails the job's exit code.
#include <gtest/gtest.h>
#include <mpi.h>
#include <torch/torch.h>

#include "dist/context.hpp"

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  // As ddpm_dist runs: failed MPI calls return their error to dist::mpi_check.
  ddpm::dist::init_mpi_errors();
  ::testing::InitGoogleTest(&argc, argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  // Ranks x threads must not exceed the cores of a 2-core machine.
  torch::set_num_threads(1);
  if (rank != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int failed = RUN_ALL_TESTS();
  MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return failed;
}
