// NCCL for data-parallel training: the unique id as bytes (what rank 0's rendezvous hands out),
// and the communicators of this process's GPUs. Communicators are non-blocking, and every wait on
// NCCL's work polls it with a deadline: a peer that fails, vanishes or stalls aborts the
// communicators and becomes an Error with an exit code, never a hang.
//   exit 3 (kDataUnavailable)  a peer or the network failed (ncclRemoteError, ncclSystemError), or
//                              the deadline passed: a Job retry may pass, as for the rendezvous
//   exit 4 (kGpuUnusable)      a CUDA error under NCCL (ncclUnhandledCudaError)
//   exit 2 (kBadArguments)     ncclInvalidUsage while joining the world: NCCL's "Duplicate GPU
//                              detected", two ranks on one GPU (the rendezvous refuses such a
//                              world first, by PCI bus id; this is the backstop)
//   exit 1                     NCCL says we misused it otherwise (a bug)
//   130 / 143                  a stop request that the work in flight did not finish within 5 s
// NVLink SHARP (multicast, NCCL_NVLS_ENABLE) is left as the environment sets it: this code never
// touches NCCL's environment.
#pragma once

#include <cuda_runtime.h>

#include <chrono>
#include <cstddef>
#include <exception>
#include <string>
#include <vector>

#include "gpu/libraries.h"

namespace mnist {

// The size of NCCL's unique id, which the rendezvous checks before NCCL parses one.
constexpr std::size_t kNcclIdBytes = NCCL_UNIQUE_ID_BYTES;

// A fresh NCCL unique id (ncclGetUniqueId) as its 128 bytes.
std::string new_nccl_id();

// "NCCL 2.28.9" (the library this process loaded).
std::string nccl_version_string();

class NcclGroup {
 public:
  // This process's part of a world of `ranks` ranks: devices[i] becomes rank first_rank + i, all
  // joined in one NCCL group. Waits at most `timeout` for every rank of the world to join.
  NcclGroup(const std::string& id, const std::vector<int>& devices, int first_rank, int ranks,
            std::chrono::milliseconds timeout);
  ~NcclGroup();
  NcclGroup(const NcclGroup&) = delete;
  NcclGroup& operator=(const NcclGroup&) = delete;

  int local_size() const { return static_cast<int>(comms_.size()); }
  int ranks() const { return ranks_; }
  int first_rank() const { return first_rank_; }
  int device(int i) const { return devices_[i]; }
  ncclComm_t comm(int i) const { return comms_[i]; }

  // Runs `enqueue` (one NCCL call per communicator, with the current device set by the caller,
  // each call's result handed to note()) between ncclGroupStart and ncclGroupEnd, then waits until
  // NCCL has taken the calls. A failure inside is acted on only after the group is closed (an
  // abort inside an open group would be queued into it and lost).
  template <class Enqueue>
  void group(const std::string& what, Enqueue&& enqueue) {
    check(lib::nccl().ncclGroupStart(), what);
    group_result_ = ncclSuccess;
    std::exception_ptr error;
    try {
      enqueue();
    } catch (...) {
      error = std::current_exception();
    }
    const ncclResult_t end = lib::nccl().ncclGroupEnd();
    if (error) {
      abort();
      std::rethrow_exception(error);
    }
    if (group_result_ != ncclSuccess) fail(group_result_, what);
    settle(end, what);
  }
  // The result of an NCCL call made inside group(): the first failure is kept for after the group.
  void note(ncclResult_t rc) {
    if (rc != ncclSuccess && rc != ncclInProgress && group_result_ == ncclSuccess)
      group_result_ = rc;
  }

  // Waits until every stream has finished its work, watching the communicators meanwhile (a
  // stream of this process's GPUs may wait on a collective that a peer never joins); at most
  // `limit`, or the group's timeout when it is zero.
  void wait(const std::vector<cudaStream_t>& streams, const std::string& what,
            std::chrono::milliseconds limit = std::chrono::milliseconds::zero());

  // Throws the Error for an NCCL result (not ncclSuccess) while doing `what`; the communicators are
  // aborted first when the failure leaves them unusable.
  void check(ncclResult_t rc, const std::string& what);

 private:
  // After a call that may answer ncclInProgress: polls until every communicator is done with it.
  void settle(ncclResult_t rc, const std::string& what);
  void poll_async_errors(const std::string& what);
  void abort();
  [[noreturn]] void fail(ncclResult_t rc, const std::string& what);

  std::vector<int> devices_;
  std::vector<ncclComm_t> comms_;
  int first_rank_ = 0, ranks_ = 0;
  std::chrono::milliseconds timeout_;
  bool aborted_ = false;
  bool joining_ = true;  // inside the constructor: ncclInvalidUsage is a misconfigured world
  ncclResult_t group_result_ = ncclSuccess;
};

}  // namespace mnist
