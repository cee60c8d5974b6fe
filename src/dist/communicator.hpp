// Collective operations over the ranks of one job. MpiCommunicator moves CPU tensors through MPI;
// NcclCommunicator moves CUDA tensors through NCCL; SelfCommunicator is the world of one rank
// (a reference for tests, and a job started without mpirun needs nothing else).
#pragma once

#include <torch/types.h>

#include <memory>
#include <string>

namespace ddpm::dist {

// An operation in flight.
//
// The completion contract every communicator meets (docs/distributed.md): after wait(), whatever
// the caller does next sees the result, and until then the tensor belongs to the communicator.
// Where the tensor is on the host (MPI, self), wait() blocks until the result is there. Where it is
// on a GPU (NCCL), wait() makes the compute stream wait for the operation's completion event and
// returns at once: the work queued after it, and any host read of the tensor (which goes through
// the stream), come after the result, while the host runs ahead. An operation started between
// group_begin() and group_end() may not start before group_end() (NCCL enqueues nothing until
// ncclGroupEnd), so its completion can only be established there: wait() is called after
// group_end(), never before.
class Work {
 public:
  virtual ~Work() = default;
  virtual void wait() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string name() const = 0;

  // In-place sum over ranks of a contiguous tensor.
  virtual void allreduce_sum(torch::Tensor& t) = 0;
  // The same, started now; the tensor must stay alive and untouched until wait() returns.
  virtual std::unique_ptr<Work> allreduce_sum_async(torch::Tensor& t) = 0;
  // Whether allreduce_sum_async may be called from a thread other than the main one. CUDA autograd
  // runs gradient hooks on its own device thread; MPI is initialised funneled (main thread only).
  virtual bool launches_from_any_thread() const { return true; }
  // Lets operations in flight advance; called between pieces of other work.
  virtual void progress() {}
  // Brackets several async all-reduces launched together (NCCL fuses them; MPI ignores it).
  virtual void group_begin() {}
  virtual void group_end() {}
  virtual void broadcast(torch::Tensor& t, int root) = 0;
  // Concatenates every rank's tensor along dimension 0 on `root` (sizes along dimension 0 may
  // differ per rank; the other dimensions and the dtype must agree). Other ranks get an
  // undefined tensor.
  virtual torch::Tensor gatherv(const torch::Tensor& t, int root) = 0;
  virtual void barrier() = 0;
  // Blocks the host until every operation launched so far has completed, with the device work
  // queued after it: where the host is about to read the device (the agreements, a checkpoint). It
  // does nothing where wait() blocks the host already. On a GPU it is a training step's only host
  // wait for the communicator, and the watchdog times it.
  virtual void synchronize() {}
  // A failure the communicator found on its own, in an operation no host call waits for (NCCL's
  // asynchronous errors: a peer lost mid-collective); "" while there is none. The watchdog's
  // thread asks once a second; the thread running the step never does.
  virtual std::string failure() { return ""; }
  // What the caller is doing ("training step 30", "evaluation"), for diagnostics, and whether
  // waits in it are to be timed (dist/watchdog.hpp): false where ranks legitimately wait long for
  // one another (one rank samples a batch more, rank 0 alone computes metrics).
  virtual void set_phase(const std::string&, bool /*timed*/ = true) {}
  // Ends this rank's part in every operation in flight so that the process can exit (the
  // watchdog, before it ends the job): NCCL's ncclCommAbort. Called from another thread; the
  // handle is aborted once, and nothing touches it after (dist/comm_guard.hpp): a call in flight on
  // another thread throws rather than return a result the abort cut short.
  virtual void abort() {}
};

class SelfCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string name() const override { return "self"; }
  void allreduce_sum(torch::Tensor&) override {}
  std::unique_ptr<Work> allreduce_sum_async(torch::Tensor&) override;
  void broadcast(torch::Tensor&, int) override {}
  torch::Tensor gatherv(const torch::Tensor& t, int) override { return t.clone(); }
  void barrier() override {}
};

}  // namespace ddpm::dist
