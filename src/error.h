// One error type for the host program; main() turns it into a message and an exit code (and a
// CUDA failure, kernels/cuda_error.h's CudaError, into exit code 4).
#pragma once

#include <stdexcept>
#include <string>
#include <utility>

namespace mnist {

// Exit codes are part of the product's interface: k8s/job.yaml's podFailurePolicy keys on them.
enum class ExitCode : int {
  kOk = 0,
  kInternal = 1,  // a bug: an exception nothing above expected
  kBadArguments = 2,
  kDataUnavailable = 3,  // the data could not be fetched (mirrors down or unreachable)
  kGpuUnusable = 4,      // GPU requested but no device, driver too old, or a CUDA error
  kDiverged = 5,         // loss became NaN or Inf
  kOutputFailed = 6,   // an output cannot be written: --log_dir, --checkpoint_dir, --benchmark_out,
                       // stdout (full disk, read-only or missing folder, closed pipe)
  kDataInvalid = 7,    // data or checkpoint present but corrupt: every copy failed its checksum,
                       // a malformed idx file, no valid checkpoint (retrying cannot fix it)
  kInterrupted = 130,  // SIGINT (Ctrl-C): checkpoint saved when configured, then stopped
  kTerminated = 143,   // SIGTERM: checkpoint saved when configured, then stopped (128 + 15)
};

// `reason`, when given, is the finer cause the verdict reports (a token of app/report.h's
// reasons() that belongs to `code`, e.g. "wrong_answer" for kGpuUnusable); empty: the verdict
// works it out from the code and what the run had reached.
class Error : public std::runtime_error {
 public:
  Error(ExitCode code, const std::string& message, std::string reason = "")
      : std::runtime_error(message), code_(code), reason_(std::move(reason)) {}
  ExitCode code() const { return code_; }
  const std::string& reason() const { return reason_; }

 private:
  ExitCode code_;
  std::string reason_;
};

}  // namespace mnist
