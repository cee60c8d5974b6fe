#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dist/mpi_communicator.hpp"
#include "dist/nccl_communicator.hpp"
#include "util/error.hpp"

using namespace ddpm;

namespace {
// A tensor whose values identify the rank and the position.
torch::Tensor filled(std::int64_t n, torch::ScalarType type, int rank) {
  return (torch::arange(n, torch::kFloat64) + 1000.0 * rank).to(type);
}
}  // namespace

TEST(Mpi, TwoRanks) {
  dist::MpiCommunicator comm;
  ASSERT_EQ(comm.size(), 2) << "run this suite under mpirun -np 2";
}

TEST(Mpi, AllreduceSumsEverySizeAndDtype) {
  dist::MpiCommunicator comm;
  for (auto type : {torch::kFloat32, torch::kFloat64, torch::kInt64, torch::kInt32}) {
    for (std::int64_t n : {0, 1, 7, 1000, 65537}) {
      auto t = filled(n, type, comm.rank());
      comm.allreduce_sum(t);
      // sum over ranks r of (i + 1000 r) = 2i + 1000
      auto expected = (torch::arange(n, torch::kFloat64) * 2 + 1000.0).to(type);
      EXPECT_TRUE(torch::equal(t, expected)) << c10::toString(type) << " n=" << n;
      auto a = filled(n, type, comm.rank());
      auto work = comm.allreduce_sum_async(a);
      comm.progress();
      work->wait();
      EXPECT_TRUE(torch::equal(a, expected)) << "async " << c10::toString(type) << " n=" << n;
    }
  }
}

TEST(Mpi, BroadcastCopiesTheRootsTensor) {
  dist::MpiCommunicator comm;
  for (int root : {0, 1}) {
    for (std::int64_t n : {0, 3, 4099}) {
      auto t = filled(n, torch::kFloat32, comm.rank());
      comm.broadcast(t, root);
      EXPECT_TRUE(torch::equal(t, filled(n, torch::kFloat32, root))) << "root " << root << " n=" << n;
    }
  }
  auto u = torch::full({5}, comm.rank() == 0 ? 7 : 0, torch::kUInt8);
  comm.broadcast(u, 0);
  EXPECT_EQ(u.sum().item<int>(), 35);
}

TEST(Mpi, GathervConcatenatesUnequalPartsInRankOrder) {
  dist::MpiCommunicator comm;
  // Rank 0 gives 3 rows, rank 1 gives 0 or 5 rows: sizes that do not divide evenly, and empty.
  for (std::int64_t rows1 : {0, 5}) {
    const std::int64_t rows = comm.rank() == 0 ? 3 : rows1;
    auto t = (torch::arange(rows * 4, torch::kFloat64).view({rows, 4}) + 100.0 * comm.rank()).to(torch::kFloat32);
    auto all = comm.gatherv(t, 0);
    if (comm.rank() == 0) {
      auto expected = torch::cat({torch::arange(12, torch::kFloat32).view({3, 4}),
                                  torch::arange(rows1 * 4, torch::kFloat32).view({rows1, 4}) + 100});
      EXPECT_TRUE(torch::equal(all, expected)) << "rows1=" << rows1;
    } else {
      EXPECT_FALSE(all.defined());
    }
  }
  auto bytes = torch::full({2, 3}, comm.rank() + 1, torch::kUInt8);
  auto all = comm.gatherv(bytes, 1);
  if (comm.rank() == 1) {
    EXPECT_EQ(all.sum().item<int>(), 6 * 1 + 6 * 2);
  }
  comm.barrier();
}

TEST(Nccl, WithoutAGpuTheBackendRefusesWithTheFix) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "a GPU is present";
  try {
    dist::make_nccl_communicator(0);
    FAIL() << "NCCL communicator created without a GPU";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("set run.backend: mpi"), std::string::npos) << e.what();
  }
}

// With MPI_ERRORS_RETURN (dist::init_mpi_errors), a failed MPI call reaches the caller as an
// exception naming the call; before, MPI's default handler ended the whole job inside MPI_Bcast.
TEST(Mpi, AFailedCallThrowsWithItsName) {
  dist::MpiCommunicator comm;
  auto t = torch::zeros({4});
  try {
    comm.broadcast(t, 7);  // no rank 7 in a world of 2
    FAIL() << "a broadcast from a rank that does not exist succeeded";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("MPI_Bcast failed"), std::string::npos) << e.what();
  }
}
