#include "gpu/nccl.h"

#include <algorithm>
#include <optional>
#include <stdexcept>
#include <thread>

#include "error.h"
#include "kernels/cuda_error.h"
#include "stop.h"
#include "watchdog.h"

namespace mnist {
namespace {

using Clock = std::chrono::steady_clock;

// Work still in flight when a stop is requested gets this long to finish before it is aborted.
constexpr std::chrono::seconds kStopGrace{5};
// How long the destructor lets NCCL finish before it aborts the communicators.
constexpr std::chrono::seconds kFinalizeLimit{10};

std::string seconds_of(std::chrono::milliseconds d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::seconds>(d).count()) + " s";
}

// Waits politely: spins at first (collectives of a step finish in microseconds), then sleeps.
class Poller {
 public:
  void pause() {
    if (++polls_ < 2000)
      std::this_thread::yield();
    else
      std::this_thread::sleep_for(std::chrono::microseconds(100));
  }

 private:
  int polls_ = 0;
};

}  // namespace

std::string new_nccl_id() {
  ncclUniqueId id{};
  const ncclResult_t rc = lib::nccl().ncclGetUniqueId(&id);
  if (rc != ncclSuccess) {
    throw Error(ExitCode::kDataUnavailable,
                std::string("NCCL cannot create its unique id (ncclGetUniqueId: ") +
                    lib::nccl().ncclGetErrorString(rc) +
                    "): no usable network interface for its bootstrap?");
  }
  return std::string(id.internal, sizeof id.internal);
}

std::string nccl_version_string() {
  int v = 0;
  if (lib::nccl().ncclGetVersion(&v) != ncclSuccess) return "NCCL (version unknown)";
  // Since 2.9: major * 10000 + minor * 100 + patch.
  return "NCCL " + std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." +
         std::to_string(v % 100);
}

NcclGroup::NcclGroup(const std::string& id, const std::vector<int>& devices, int first_rank,
                     int ranks, std::chrono::milliseconds timeout)
    : devices_(devices),
      comms_(devices.size(), nullptr),
      first_rank_(first_rank),
      ranks_(ranks),
      timeout_(timeout) {
  heartbeat("nccl");  // joining the world is bounded by `timeout`, which the watchdog allows for
  ncclUniqueId unique{};
  if (id.size() != sizeof unique.internal)
    throw std::invalid_argument("NcclGroup: an NCCL unique id is 128 bytes");
  if (devices.empty() || first_rank < 0 || first_rank + int(devices.size()) > ranks)
    throw std::invalid_argument("NcclGroup: ranks outside the world");
  std::copy(id.begin(), id.end(), unique.internal);
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;  // every wait below is ours, with a deadline
  const std::string what = "joining the NCCL world of " + std::to_string(ranks) + " GPUs";
  group(what, [&] {
    for (std::size_t i = 0; i < devices_.size(); ++i) {
      MNIST_CUDA_CHECK(cudaSetDevice(devices_[i]));
      note(lib::nccl().ncclCommInitRankConfig(&comms_[i], ranks, unique,
                                              first_rank + static_cast<int>(i), &config));
    }
  });
  joining_ = false;
}

NcclGroup::~NcclGroup() {
  if (aborted_) return;
  // Finalize (on a non-blocking communicator it answers ncclInProgress and finishes in the
  // background), poll it, bounded; destroy what finished cleanly, abort the rest.
  std::vector<bool> clean(comms_.size(), true);
  for (std::size_t i = 0; i < comms_.size(); ++i) {
    const ncclResult_t rc = comms_[i] ? lib::nccl().ncclCommFinalize(comms_[i]) : ncclSuccess;
    if (rc != ncclSuccess && rc != ncclInProgress) clean[i] = false;
  }
  const auto deadline = Clock::now() + kFinalizeLimit;
  Poller poller;
  for (std::size_t i = 0; i < comms_.size(); ++i) {
    if (!comms_[i] || !clean[i]) continue;
    ncclResult_t state = ncclInProgress;
    while (lib::nccl().ncclCommGetAsyncError(comms_[i], &state) == ncclSuccess &&
           state == ncclInProgress && Clock::now() < deadline)
      poller.pause();
    clean[i] = state == ncclSuccess;
  }
  for (std::size_t i = 0; i < comms_.size(); ++i) {
    if (!comms_[i]) continue;
    if (clean[i])
      lib::nccl().ncclCommDestroy(comms_[i]);
    else
      lib::nccl().ncclCommAbort(comms_[i]);
  }
}

void NcclGroup::abort() {
  if (aborted_) return;
  aborted_ = true;
  for (ncclComm_t& comm : comms_) {
    if (comm) lib::nccl().ncclCommAbort(comm);
    comm = nullptr;
  }
}

void NcclGroup::fail(ncclResult_t rc, const std::string& what) {
  std::string detail = lib::nccl().ncclGetErrorString(rc);
  for (ncclComm_t comm : comms_) {
    const char* last = comm ? lib::nccl().ncclGetLastError(comm) : nullptr;
    if (last && *last) {
      detail += " (" + std::string(last) + ")";
      break;
    }
  }
  abort();
  const std::string message = "NCCL failed while " + what + ": " + detail;
  switch (rc) {
    case ncclUnhandledCudaError:
      throw Error(ExitCode::kGpuUnusable, message);
    case ncclInvalidUsage:
      if (!joining_) throw std::logic_error(message);
      throw Error(ExitCode::kBadArguments,
                  message +
                      "; two ranks of the world on one GPU (NCCL's \"Duplicate GPU detected\" "
                      "names both ranks and the GPU's bus id)? Each rank needs a GPU of its own: "
                      "check nvidia.com/gpu, --gpus and CUDA_VISIBLE_DEVICES");
    case ncclSystemError:
    case ncclRemoteError:
      throw Error(ExitCode::kDataUnavailable,
                  message + "; a peer process or GPU failed, or the network between them did");
    default:
      throw std::logic_error(message);
  }
}

void NcclGroup::check(ncclResult_t rc, const std::string& what) {
  if (rc != ncclSuccess) fail(rc, what);
}

void NcclGroup::poll_async_errors(const std::string& what) {
  if (aborted_) {
    throw Error(ExitCode::kDataUnavailable,
                "NCCL: " + what + ": the communicators were aborted after an earlier failure");
  }
  for (ncclComm_t comm : comms_) {
    ncclResult_t state = ncclSuccess;
    check(lib::nccl().ncclCommGetAsyncError(comm, &state), what);
    if (state != ncclSuccess && state != ncclInProgress) fail(state, what);
  }
}

void NcclGroup::settle(ncclResult_t rc, const std::string& what) {
  if (rc != ncclSuccess && rc != ncclInProgress) fail(rc, what);
  const auto start = Clock::now();
  std::optional<Clock::time_point> stop_seen;
  Poller poller;
  for (ncclComm_t comm : comms_) {
    for (;;) {
      ncclResult_t state = ncclSuccess;
      check(lib::nccl().ncclCommGetAsyncError(comm, &state), what);
      if (state == ncclSuccess) break;
      if (state != ncclInProgress) fail(state, what);
      if (Clock::now() - start > timeout_) {
        abort();
        throw Error(ExitCode::kDataUnavailable, "NCCL: " + what + " did not finish within " +
                                                    seconds_of(timeout_) +
                                                    " (a peer never came, or is stuck)");
      }
      if (stop_requested()) {  // the same grace as wait(): a checkpoint may still follow
        const auto now = Clock::now();
        if (!stop_seen) stop_seen = now;
        if (now - *stop_seen > kStopGrace) {
          abort();
          throw_stopped(what);
        }
      }
      poller.pause();
    }
  }
}

void NcclGroup::wait(const std::vector<cudaStream_t>& streams, const std::string& what,
                     std::chrono::milliseconds limit) {
  heartbeat("nccl");  // bounded by the timeout below, which the watchdog allows for
  const auto timeout = limit > std::chrono::milliseconds::zero() ? limit : timeout_;
  const auto start = Clock::now();
  std::optional<Clock::time_point> stop_seen;
  Poller poller;
  std::vector<bool> done(streams.size(), false);
  for (;;) {
    bool all = true;
    for (std::size_t i = 0; i < streams.size(); ++i) {
      if (done[i]) continue;
      const cudaError_t rc = cudaStreamQuery(streams[i]);
      if (rc == cudaSuccess) {
        done[i] = true;
      } else if (rc == cudaErrorNotReady) {
        all = false;
      } else {
        abort();
        MNIST_CUDA_CHECK(rc);
      }
    }
    if (all) return;
    poll_async_errors(what);
    const auto now = Clock::now();
    if (now - start > timeout) {
      abort();
      throw Error(ExitCode::kDataUnavailable,
                  "NCCL: " + what + " did not finish within " + seconds_of(timeout) +
                      ": a peer process is stuck or gone, or the network between them is");
    }
    if (stop_requested()) {
      if (!stop_seen) stop_seen = now;
      if (now - *stop_seen > kStopGrace) {
        abort();
        throw_stopped(what);
      }
    }
    poller.pause();
  }
}

}  // namespace mnist
