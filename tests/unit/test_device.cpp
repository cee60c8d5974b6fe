// One place decides a rank's GPU, and the model and the NCCL communicator both take it.
#include <gtest/gtest.h>

#include "dist/context.hpp"

using namespace ddpm;

// srun --gpus-per-task=1 shows every rank one device, whatever its local rank: local rank 3 must
// take device 0 (cudaSetDevice(3) failed there for every rank but 0).
TEST(Device, LocalRankThreeWithOneVisibleGpuTakesDeviceZero) {
  EXPECT_EQ(dist::cuda_device_index(3, 1), 0);
  EXPECT_EQ(dist::cuda_device_index(0, 1), 0);
}

// mpirun on a node of 4 GPUs, each rank sees all of them: local rank r takes device r; a node
// with more ranks than GPUs (several ranks sharing one, run.backend: mpi) wraps around.
TEST(Device, RanksSpreadOverTheVisibleGpus) {
  for (int r = 0; r < 4; ++r) EXPECT_EQ(dist::cuda_device_index(r, 4), r);
  EXPECT_EQ(dist::cuda_device_index(5, 4), 1);
  EXPECT_EQ(dist::cuda_device_index(1, 1), 0);
}
