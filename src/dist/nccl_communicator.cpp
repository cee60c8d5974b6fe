#include "dist/nccl_communicator.hpp"

#include "util/error.hpp"

#ifdef DDPM_HAVE_NCCL
#include <cuda_runtime.h>
#include <mpi.h>
#include <nccl.h>
#include <torch/torch.h>

#include <atomic>
#include <thread>

#include "dist/mpi_check.hpp"
#include "dist/mpi_communicator.hpp"
#ifdef DDPM_TORCH_CUDA
#include <c10/cuda/CUDAStream.h>
#endif
#endif

namespace ddpm::dist {

#ifndef DDPM_HAVE_NCCL

bool nccl_compiled() { return false; }

std::unique_ptr<Communicator> make_nccl_communicator(int) {
  // dist::choose_backend never picks NCCL for a build without it, and says why to the user.
  throw std::logic_error("make_nccl_communicator: this build has no NCCL");
}

#else

namespace {

void cuda_check(cudaError_t rc, const char* what) {
  if (rc != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(rc));
}
void nccl_check(ncclResult_t rc, const char* what) {
  if (rc != ncclSuccess) throw std::runtime_error(std::string(what) + ": " + ncclGetErrorString(rc));
}

ncclDataType_t nccl_type(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat32: return ncclFloat32;
    case torch::kFloat64: return ncclFloat64;
    case torch::kBFloat16: return ncclBfloat16;
    case torch::kHalf: return ncclFloat16;
    case torch::kInt64: return ncclInt64;
    case torch::kInt32: return ncclInt32;
    case torch::kUInt8: return ncclUint8;
    default: throw std::invalid_argument(std::string("NcclCommunicator: unsupported dtype ") + c10::toString(t));
  }
}

// The stream LibTorch computes on: the current stream where LibTorch has CUDA, else the legacy
// default stream that a CUDA LibTorch uses unless told otherwise.
cudaStream_t compute_stream() {
#ifdef DDPM_TORCH_CUDA
  return c10::cuda::getCurrentCUDAStream().stream();
#else
  return nullptr;
#endif
}

// A completion event, created and recorded when the operation is on the stream.
struct Event {
  cudaEvent_t event = nullptr;
  ~Event() {
    if (event) cudaEventDestroy(event);
  }
};

class NcclCommunicator;

class NcclWork final : public Work {
 public:
  NcclWork(NcclCommunicator& comm, std::shared_ptr<Event> done, torch::Tensor keep_alive)
      : comm_(comm), done_(std::move(done)), tensor_(std::move(keep_alive)) {}
  void wait() override;

 private:
  NcclCommunicator& comm_;
  std::shared_ptr<Event> done_;
  torch::Tensor tensor_;
};

class NcclCommunicator final : public Communicator {
 public:
  explicit NcclCommunicator(int device) : rank_(host_.rank()), size_(host_.size()) {
    cuda_check(cudaSetDevice(device), "cudaSetDevice");
    ncclUniqueId id;
    if (rank_ == 0) nccl_check(ncclGetUniqueId(&id), "ncclGetUniqueId");
    mpi_check(MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD), "MPI_Bcast of the ncclUniqueId");
    nccl_check(ncclCommInitRank(&comm_, size_, id, rank_), "ncclCommInitRank");
    cuda_check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
  }
  ~NcclCommunicator() override {
    if (!aborted_) ncclCommDestroy(comm_);
    cudaStreamDestroy(stream_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return "nccl"; }

  void allreduce_sum(torch::Tensor& t) override {
    // Host scalars (losses, counters) take MPI; device tensors take NCCL.
    if (t.device().is_cpu()) return host_.allreduce_sum(t);
    allreduce_sum_async(t)->wait();
  }
  std::unique_ptr<Work> allreduce_sum_async(torch::Tensor& t) override {
    check_tensor(t);
    order_after_compute();
    nccl_check(ncclAllReduce(t.data_ptr(), t.data_ptr(), t.numel(), nccl_type(t.scalar_type()), ncclSum, comm_, stream_),
               "ncclAllReduce");
    auto done = std::make_shared<Event>();
    // Inside a group NCCL enqueues nothing until ncclGroupEnd: an event recorded now would
    // complete before the reduction runs. group_end() records it.
    if (group_depth_ > 0)
      pending_.push_back(done);
    else
      record(*done);
    return std::make_unique<NcclWork>(*this, done, t);
  }
  void group_begin() override {
    nccl_check(ncclGroupStart(), "ncclGroupStart");
    ++group_depth_;
  }
  void group_end() override {
    nccl_check(ncclGroupEnd(), "ncclGroupEnd");
    if (--group_depth_ > 0) return;
    // Now the group's reductions are on the stream: their completion is an event after them.
    for (auto& e : pending_) record(*e);
    pending_.clear();
  }
  void broadcast(torch::Tensor& t, int root) override {
    check_tensor(t);
    order_after_compute();
    nccl_check(ncclBroadcast(t.data_ptr(), t.data_ptr(), t.numel(), nccl_type(t.scalar_type()), root, comm_, stream_),
               "ncclBroadcast");
    auto done = std::make_shared<Event>();
    record(*done);
    NcclWork(*this, done, t).wait();
  }
  // Gathers are rare and small (samples, features), and barriers carry no data: both go through
  // MPI (which stages CUDA tensors through the host).
  torch::Tensor gatherv(const torch::Tensor& t, int root) override { return host_.gatherv(t, root); }
  void barrier() override { host_.barrier(); }
  void abort() override {
    aborted_ = true;
    ncclCommAbort(comm_);
  }

  // Blocks the host until `done` has completed, polling NCCL for asynchronous errors (a peer
  // that failed), so that a hung or failed collective blocks here, where the watchdog times it,
  // and not later in whatever first reads the result.
  void wait_for(const Event& done) {
    TORCH_CHECK(done.event, "NcclCommunicator: wait() on an all-reduce of a group before group_end()");
    for (;;) {
      const cudaError_t rc = cudaEventQuery(done.event);
      if (rc == cudaSuccess) return;
      if (rc != cudaErrorNotReady) cuda_check(rc, "cudaEventQuery");
      ncclResult_t async = ncclSuccess;
      nccl_check(ncclCommGetAsyncError(comm_, &async), "ncclCommGetAsyncError");
      if (async != ncclSuccess && async != ncclInProgress) {
        abort();
        throw std::runtime_error(std::string("NCCL collective failed on rank ") + std::to_string(rank_) + ": " +
                                 ncclGetErrorString(async) + "; the communicator was aborted");
      }
      std::this_thread::yield();
    }
  }

 private:
  void check_tensor(const torch::Tensor& t) const {
    TORCH_CHECK(t.is_cuda() && t.is_contiguous(), "NcclCommunicator needs a contiguous CUDA tensor");
  }
  void order_after_compute() {
    cudaEvent_t ready;
    cuda_check(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming), "cudaEventCreate");
    cuda_check(cudaEventRecord(ready, compute_stream()), "cudaEventRecord");
    cuda_check(cudaStreamWaitEvent(stream_, ready, 0), "cudaStreamWaitEvent");
    cudaEventDestroy(ready);
  }
  void record(Event& e) {
    cuda_check(cudaEventCreateWithFlags(&e.event, cudaEventDisableTiming), "cudaEventCreate");
    cuda_check(cudaEventRecord(e.event, stream_), "cudaEventRecord");
  }

  MpiCommunicator host_;  // first: rank_ and size_ come from it
  int rank_ = 0, size_ = 1;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  int group_depth_ = 0;
  std::vector<std::shared_ptr<Event>> pending_;  // works of the open group, without an event yet
  std::atomic<bool> aborted_{false};
};

// Once the host has seen the event complete, work enqueued after this call runs after the
// reduction on any stream: no stream wait is needed.
void NcclWork::wait() { comm_.wait_for(*done_); }

}  // namespace

bool nccl_compiled() { return true; }

std::unique_ptr<Communicator> make_nccl_communicator(int device) {
  int devices = 0;
  const cudaError_t rc = cudaGetDeviceCount(&devices);
  if (rc != cudaSuccess || devices == 0)
    throw Error(std::string("run.backend: nccl needs a CUDA GPU, and none is usable here (cudaGetDeviceCount: ") +
                (rc != cudaSuccess ? cudaGetErrorString(rc) : "0 devices") +
                "); set run.backend: mpi (or auto) to train on CPU through MPI");
  if (device < 0 || device >= devices)
    throw Error("run.backend: nccl: GPU " + std::to_string(device) + " asked for, " + std::to_string(devices) +
                " visible to this rank");
  return std::make_unique<NcclCommunicator>(device);
}

#endif

}  // namespace ddpm::dist
