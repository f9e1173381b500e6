// One check for every CUDA runtime call and kernel launch, on both sides of the seam: a failure
// throws CudaError naming the call and the caller's file and line. The kernels know nothing of
// exit codes; the program's main() turns a CudaError into exit code 4 (GPU unusable).
#pragma once

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace mnist {

class CudaError : public std::runtime_error {
 public:
  CudaError(cudaError_t code, const char* what, const char* file, int line)
      : std::runtime_error(std::string("CUDA error ") + cudaGetErrorName(code) + " (" +
                           cudaGetErrorString(code) + ") in " + what + " at " + file + ":" +
                           std::to_string(line)),
        code_(code) {}
  cudaError_t code() const { return code_; }

 private:
  cudaError_t code_;
};

inline void cuda_check(cudaError_t rc, const char* what, const char* file, int line) {
  if (rc != cudaSuccess) throw CudaError(rc, what, file, line);
}

}  // namespace mnist

#define MNIST_CUDA_CHECK(call) ::mnist::cuda_check((call), #call, __FILE__, __LINE__)
// After every <<<...>>> launch: catches bad launch configurations at once.
#define MNIST_LAUNCH_CHECK(name) ::mnist::cuda_check(cudaGetLastError(), name, __FILE__, __LINE__)
