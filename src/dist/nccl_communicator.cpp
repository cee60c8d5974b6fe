#include "dist/nccl_communicator.hpp"

#include "util/error.hpp"

#ifdef DDPM_HAVE_NCCL
#include <cuda_runtime.h>
#include <mpi.h>
#include <nccl.h>
#include <torch/torch.h>

#include <thread>

#include "dist/comm_guard.hpp"
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
// A call on a non-blocking communicator may return ncclInProgress: it goes on, and
// NcclCommunicator::settle() waits for it.
void nccl_check(ncclResult_t rc, const char* what) {
  if (rc != ncclSuccess && rc != ncclInProgress)
    throw std::runtime_error(std::string(what) + ": " + ncclGetErrorString(rc));
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

// Every call on comm_ goes through guard_ (dist/comm_guard.hpp). The communicator is
// non-blocking, so that no call holds the guard while a peer keeps it waiting: a call that returns
// ncclInProgress is polled to its end by settle(), which the watchdog times as a launch.
class NcclCommunicator final : public Communicator {
 public:
  explicit NcclCommunicator(int device) : rank_(host_.rank()), size_(host_.size()) {
    cuda_check(cudaSetDevice(device), "cudaSetDevice");
    ncclUniqueId id;
    if (rank_ == 0) nccl_check(ncclGetUniqueId(&id), "ncclGetUniqueId");
    mpi_check(MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD), "MPI_Bcast of the ncclUniqueId");
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    nccl_check(ncclCommInitRankConfig(&comm_, size_, id, rank_, &config), "ncclCommInitRankConfig");
    settle("ncclCommInitRankConfig");
    cuda_check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
  }
  ~NcclCommunicator() override {
    if (!guard_.aborted()) {
      // A non-blocking communicator finishes its operations in flight before it is freed.
      ncclResult_t state = ncclCommFinalize(comm_);
      while (state == ncclInProgress && ncclCommGetAsyncError(comm_, &state) == ncclSuccess) std::this_thread::yield();
      ncclCommDestroy(comm_);
    }
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
    guard_.run([&] {
      nccl_check(ncclAllReduce(t.data_ptr(), t.data_ptr(), t.numel(), nccl_type(t.scalar_type()), ncclSum, comm_,
                               stream_),
                 "ncclAllReduce");
    });
    auto done = std::make_shared<Event>();
    // Inside a group NCCL enqueues nothing until ncclGroupEnd: an event recorded now would
    // complete before the reduction runs. group_end() records it.
    if (group_depth_ > 0) {
      pending_.push_back(done);
    } else {
      settle("ncclAllReduce");
      record(*done);
    }
    return std::make_unique<NcclWork>(*this, done, t);
  }
  void group_begin() override {
    guard_.run([] { nccl_check(ncclGroupStart(), "ncclGroupStart"); });
    ++group_depth_;
  }
  void group_end() override {
    guard_.run([] { nccl_check(ncclGroupEnd(), "ncclGroupEnd"); });
    if (--group_depth_ > 0) return;
    settle("ncclGroupEnd");
    // Now the group's reductions are on the stream: their completion is an event after them.
    for (auto& e : pending_) record(*e);
    pending_.clear();
  }
  void broadcast(torch::Tensor& t, int root) override {
    check_tensor(t);
    order_after_compute();
    guard_.run([&] {
      nccl_check(ncclBroadcast(t.data_ptr(), t.data_ptr(), t.numel(), nccl_type(t.scalar_type()), root, comm_,
                               stream_),
                 "ncclBroadcast");
    });
    settle("ncclBroadcast");
    auto done = std::make_shared<Event>();
    record(*done);
    NcclWork(*this, done, t).wait();
  }
  // Gathers are rare and small (samples, features), and barriers carry no data: both go through
  // MPI (which stages CUDA tensors through the host).
  torch::Tensor gatherv(const torch::Tensor& t, int root) override { return host_.gatherv(t, root); }
  void barrier() override { host_.barrier(); }
  void synchronize() override {
    Event all;
    record(all, compute_stream());
    guard_.until([&] {
      const cudaError_t rc = cudaEventQuery(all.event);
      if (rc != cudaErrorNotReady) cuda_check(rc, "cudaEventQuery");
      return rc == cudaSuccess;
    });
  }
  std::string failure() override {
    if (guard_.aborted()) return "";
    ncclResult_t async = ncclSuccess;
    guard_.run([&] { nccl_check(ncclCommGetAsyncError(comm_, &async), "ncclCommGetAsyncError"); });
    if (async == ncclSuccess || async == ncclInProgress) return "";
    return std::string("NCCL reported an asynchronous error: ") + ncclGetErrorString(async);
  }
  void abort() override {
    guard_.abort([this] { ncclCommAbort(comm_); });
  }

  // The compute stream waits for `done`; the host does not.
  void order_after(const Event& done) {
    TORCH_CHECK(done.event, "NcclCommunicator: wait() on an all-reduce of a group before group_end()");
    // An aborted communicator's kernels end without a result: nothing may be ordered after them.
    if (guard_.aborted()) CommGuard::park();
    cuda_check(cudaStreamWaitEvent(compute_stream(), done.event, 0), "cudaStreamWaitEvent");
  }

 private:
  void check_tensor(const torch::Tensor& t) const {
    TORCH_CHECK(t.is_cuda() && t.is_contiguous(), "NcclCommunicator needs a contiguous CUDA tensor");
  }
  // Polls the communicator until its last call has finished (ncclInProgress: still going);
  // throws with NCCL's error where it failed.
  void settle(const char* what) {
    guard_.until([&] {
      ncclResult_t state = ncclSuccess;
      nccl_check(ncclCommGetAsyncError(comm_, &state), "ncclCommGetAsyncError");
      if (state == ncclInProgress) return false;
      if (state != ncclSuccess)
        throw std::runtime_error(std::string(what) + " failed on rank " + std::to_string(rank_) + ": " +
                                 ncclGetErrorString(state));
      return true;
    });
  }
  void order_after_compute() {
    Event ready;
    record(ready, compute_stream());
    cuda_check(cudaStreamWaitEvent(stream_, ready.event, 0), "cudaStreamWaitEvent");
  }
  void record(Event& e) { record(e, stream_); }
  static void record(Event& e, cudaStream_t stream) {
    cuda_check(cudaEventCreateWithFlags(&e.event, cudaEventDisableTiming), "cudaEventCreate");
    cuda_check(cudaEventRecord(e.event, stream), "cudaEventRecord");
  }

  MpiCommunicator host_;  // first: rank_ and size_ come from it
  int rank_ = 0, size_ = 1;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  int group_depth_ = 0;
  std::vector<std::shared_ptr<Event>> pending_;  // works of the open group, without an event yet
  CommGuard guard_;
};

void NcclWork::wait() { comm_.order_after(*done_); }

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
