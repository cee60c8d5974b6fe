#include "dist/mpi_communicator.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <numeric>

#include "dist/mpi_check.hpp"

namespace ddpm::dist {
namespace {

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

void require_contiguous(const torch::Tensor& t, const char* op) {
  TORCH_CHECK(t.is_contiguous(), op, ": MpiCommunicator needs a contiguous tensor");
}

int count_of(const torch::Tensor& t) {
  TORCH_CHECK(t.numel() <= std::numeric_limits<int>::max(), "MPI message of ", t.numel(), " elements is too large");
  return static_cast<int>(t.numel());
}

// MPI reads and writes host memory: a CUDA tensor goes through a pinned host copy (several ranks
// on one GPU, or a cluster without NCCL). A CPU tensor is its own staging buffer.
torch::Tensor staged(const torch::Tensor& t) {
  if (t.device().is_cpu()) return t;
  auto host = torch::empty(t.sizes(), t.options().device(torch::kCPU).pinned_memory(true));
  host.copy_(t);
  return host;
}
void unstage(const torch::Tensor& host, torch::Tensor& t) {
  if (host.data_ptr() != t.data_ptr()) t.copy_(host);
}

class MpiWork final : public Work {
 public:
  MpiWork(std::shared_ptr<MPI_Request> request, torch::Tensor host, torch::Tensor target)
      : request_(std::move(request)), host_(std::move(host)), target_(std::move(target)) {}
  void wait() override {
    mpi_check(MPI_Wait(request_.get(), MPI_STATUS_IGNORE), "MPI_Wait");
    unstage(host_, target_);
  }

 private:
  std::shared_ptr<MPI_Request> request_;
  torch::Tensor host_, target_;
};

}  // namespace

MpiCommunicator::MpiCommunicator(MPI_Comm comm) : comm_(comm) {
  mpi_check(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
  mpi_check(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
}

void MpiCommunicator::allreduce_sum(torch::Tensor& t) {
  require_contiguous(t, "allreduce");
  auto host = staged(t);
  mpi_check(MPI_Allreduce(MPI_IN_PLACE, host.data_ptr(), count_of(host), mpi_type(host.scalar_type()), MPI_SUM, comm_),
        "MPI_Allreduce");
  unstage(host, t);
}

std::unique_ptr<Work> MpiCommunicator::allreduce_sum_async(torch::Tensor& t) {
  require_contiguous(t, "allreduce_async");
  auto host = staged(t);
  auto request = std::make_shared<MPI_Request>(MPI_REQUEST_NULL);
  mpi_check(MPI_Iallreduce(MPI_IN_PLACE, host.data_ptr(), count_of(host), mpi_type(host.scalar_type()), MPI_SUM, comm_,
                       request.get()),
        "MPI_Iallreduce");
  // Requests that a wait completed go here too, not only in progress(), which nothing calls with
  // overlap off.
  forget_completed();
  in_flight_.push_back(request);
  return std::make_unique<MpiWork>(request, host, t);
}

void MpiCommunicator::progress() {
  for (auto& r : in_flight_) {
    int done = 0;
    if (*r != MPI_REQUEST_NULL) mpi_check(MPI_Test(r.get(), &done, MPI_STATUS_IGNORE), "MPI_Test");
  }
  forget_completed();
}

void MpiCommunicator::forget_completed() {
  // The Work and this list share one handle, so whichever of MPI_Test and MPI_Wait completes it
  // first sets it to MPI_REQUEST_NULL for both.
  in_flight_.erase(std::remove_if(in_flight_.begin(), in_flight_.end(),
                                  [](const auto& r) { return *r == MPI_REQUEST_NULL; }),
                   in_flight_.end());
}

void MpiCommunicator::broadcast(torch::Tensor& t, int root) {
  require_contiguous(t, "broadcast");
  auto host = staged(t);
  mpi_check(MPI_Bcast(host.data_ptr(), count_of(host), mpi_type(host.scalar_type()), root, comm_), "MPI_Bcast");
  unstage(host, t);
}

torch::Tensor MpiCommunicator::gatherv(const torch::Tensor& t, int root) {
  TORCH_CHECK(t.dim() >= 1, "gatherv needs a tensor with at least one dimension");
  auto local = t.contiguous().to(torch::kCPU);
  const std::int64_t row = c10::multiply_integers(local.sizes().slice(1));
  std::int64_t rows = local.size(0);
  std::vector<std::int64_t> all_rows(size_);
  mpi_check(MPI_Gather(&rows, 1, MPI_INT64_T, all_rows.data(), 1, MPI_INT64_T, root, comm_), "MPI_Gather");
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
  mpi_check(MPI_Gatherv(local.data_ptr(), count_of(local), mpi_type(local.scalar_type()),
                    rank_ == root ? out.data_ptr() : nullptr, counts.data(), displs.data(),
                    mpi_type(local.scalar_type()), root, comm_),
        "MPI_Gatherv");
  return out.defined() ? out.to(t.device()) : out;
}

void MpiCommunicator::barrier() { mpi_check(MPI_Barrier(comm_), "MPI_Barrier"); }

}  // namespace ddpm::dist
