// One check for every CUDA runtime call and every launch: a failure becomes Error(kGpuUnusable)
// with the call, file and line, which main() turns into exit code 4.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "error.h"

namespace mnist {

inline void cuda_check(cudaError_t rc, const char* what, const char* file, int line) {
  if (rc != cudaSuccess) {
    throw Error(ExitCode::kGpuUnusable, std::string("CUDA error ") + cudaGetErrorName(rc) + " (" +
                                            cudaGetErrorString(rc) + ") in " + what + " at " +
                                            file + ":" + std::to_string(line));
  }
}

}  // namespace mnist

#define MNIST_CUDA_CHECK(call) ::mnist::cuda_check((call), #call, __FILE__, __LINE__)
// After every kernel launch: catches bad launch configurations at once.
#define MNIST_LAUNCH_CHECK(name) ::mnist::cuda_check(cudaGetLastError(), name, __FILE__, __LINE__)
