#include "dist/mpi_communicator.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <numeric>

namespace ddpm::dist {
namespace {

void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  throw std::runtime_error(std::string(what) + " failed: " + std::string(msg, len));
}

MPI_Datatype mpi_type(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat32: return MPI_FLOAT;
    case torch::kFloat64: return MPI_DOUBLE;
    case torch::kInt64: return MPI_INT64_T;
    case torch::kInt32: return MPI_INT32_T;
    case torch::kUInt8: return MPI_UINT8_T;
    default: throw std::invalid_argument(std::string("MpiCommunicator: unsupported dtype ") + c10::toString(t));
  }
}

void require_cpu_contiguous(const torch::Tensor& t, const char* op) {
  TORCH_CHECK(t.device().is_cpu() && t.is_contiguous(), op, ": MpiCommunicator needs a contiguous CPU tensor");
}

int count_of(const torch::Tensor& t) {
  TORCH_CHECK(t.numel() <= std::numeric_limits<int>::max(), "MPI message of ", t.numel(), " elements is too large");
  return static_cast<int>(t.numel());
}

class MpiWork final : public Work {
 public:
  MpiWork(std::shared_ptr<MPI_Request> request, torch::Tensor keep_alive)
      : request_(std::move(request)), tensor_(std::move(keep_alive)) {}
  void wait() override { check(MPI_Wait(request_.get(), MPI_STATUS_IGNORE), "MPI_Wait"); }

 private:
  std::shared_ptr<MPI_Request> request_;
  torch::Tensor tensor_;
};

}  // namespace

MpiCommunicator::MpiCommunicator(MPI_Comm comm) : comm_(comm) {
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
}

void MpiCommunicator::allreduce_sum(torch::Tensor& t) {
  require_cpu_contiguous(t, "allreduce");
  check(MPI_Allreduce(MPI_IN_PLACE, t.data_ptr(), count_of(t), mpi_type(t.scalar_type()), MPI_SUM, comm_),
        "MPI_Allreduce");
}

std::unique_ptr<Work> MpiCommunicator::allreduce_sum_async(torch::Tensor& t) {
  require_cpu_contiguous(t, "allreduce_async");
  auto request = std::make_shared<MPI_Request>(MPI_REQUEST_NULL);
  check(MPI_Iallreduce(MPI_IN_PLACE, t.data_ptr(), count_of(t), mpi_type(t.scalar_type()), MPI_SUM, comm_,
                       request.get()),
        "MPI_Iallreduce");
  in_flight_.push_back(request);
  return std::make_unique<MpiWork>(request, t);
}

void MpiCommunicator::progress() {
  // The Work and this list share one handle, so whichever of MPI_Test and MPI_Wait completes it
  // first sets it to MPI_REQUEST_NULL for both.
  for (auto& r : in_flight_) {
    int done = 0;
    if (*r != MPI_REQUEST_NULL) check(MPI_Test(r.get(), &done, MPI_STATUS_IGNORE), "MPI_Test");
  }
  in_flight_.erase(std::remove_if(in_flight_.begin(), in_flight_.end(),
                                  [](const auto& r) { return *r == MPI_REQUEST_NULL; }),
                   in_flight_.end());
}

void MpiCommunicator::broadcast(torch::Tensor& t, int root) {
  require_cpu_contiguous(t, "broadcast");
  check(MPI_Bcast(t.data_ptr(), count_of(t), mpi_type(t.scalar_type()), root, comm_), "MPI_Bcast");
}

torch::Tensor MpiCommunicator::gatherv(const torch::Tensor& t, int root) {
  TORCH_CHECK(t.dim() >= 1, "gatherv needs a tensor with at least one dimension");
  auto local = t.contiguous();
  require_cpu_contiguous(local, "gatherv");
  const std::int64_t row = c10::multiply_integers(local.sizes().slice(1));
  std::int64_t rows = local.size(0);
  std::vector<std::int64_t> all_rows(size_);
  check(MPI_Gather(&rows, 1, MPI_INT64_T, all_rows.data(), 1, MPI_INT64_T, root, comm_), "MPI_Gather");
  torch::Tensor out;
  std::vector<int> counts(size_), displs(size_);
  if (rank_ == root) {
    std::int64_t total = 0;
    for (int r = 0; r < size_; ++r) {
      const auto elems = all_rows[r] * row;
      TORCH_CHECK(total + elems <= std::numeric_limits<int>::max(), "gatherv: message too large for MPI");
      counts[r] = static_cast<int>(elems);
      displs[r] = static_cast<int>(total);
      total += elems;
    }
    auto shape = local.sizes().vec();
    shape[0] = std::accumulate(all_rows.begin(), all_rows.end(), std::int64_t{0});
    out = torch::empty(shape, local.options());
  }
  check(MPI_Gatherv(local.data_ptr(), count_of(local), mpi_type(local.scalar_type()),
                    rank_ == root ? out.data_ptr() : nullptr, counts.data(), displs.data(),
                    mpi_type(local.scalar_type()), root, comm_),
        "MPI_Gatherv");
  return out;
}

void MpiCommunicator::barrier() { check(MPI_Barrier(comm_), "MPI_Barrier"); }

}  // namespace ddpm::dist
