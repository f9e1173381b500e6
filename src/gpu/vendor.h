// cuBLASLt for the vendor baseline (the cublas backend) and the benchmark's GEMM comparison: a
// handle, and one product planned once (descriptors, the heuristic's algorithm for its very
// pointers) and enqueued as often as needed, graph capture included. cuBLASLt failures become
// Error(kGpuUnusable): exit 4, like a CUDA error; a product cuBLASLt has no algorithm for is
// Error(kBadArguments): exit 2, a configuration the baseline cannot run.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "error.h"
#include "gpu/libraries.h"
#include "kernels/common/precision.h"

namespace mnist {

inline void cublas_check(cublasStatus_t rc, const char* what, const char* file, int line) {
  if (rc != CUBLAS_STATUS_SUCCESS) {
    throw Error(ExitCode::kGpuUnusable, std::string("cuBLASLt error ") +
                                            lib::cublas_lt().cublasLtGetStatusName(rc) + " in " +
                                            what + " at " + file + ":" + std::to_string(line));
  }
}
#define MNIST_CUBLAS_CHECK(call) ::mnist::cublas_check((call), #call, __FILE__, __LINE__)

class CublasLtHandle {
 public:
  CublasLtHandle() { MNIST_CUBLAS_CHECK(lib::cublas_lt().cublasLtCreate(&h_)); }
  ~CublasLtHandle() { lib::cublas_lt().cublasLtDestroy(h_); }
  CublasLtHandle(const CublasLtHandle&) = delete;
  CublasLtHandle& operator=(const CublasLtHandle&) = delete;
  cublasLtHandle_t get() const { return h_; }

 private:
  cublasLtHandle_t h_{};
};

// What a product fuses after the multiply, in the row-major terms of LtProduct.
enum class LtEpilogue {
  kNone,          // C = alpha op(A) op(B)
  kBias,          // C = alpha op(A) op(B) + bias[col]                     (CUBLASLT_EPILOGUE_BIAS)
  kReluBias,      // C = relu(alpha op(A) op(B) + bias[col])          (CUBLASLT_EPILOGUE_RELU_BIAS)
  kBiasGradient,  // C = alpha op(A) op(B) and bias[j] = sum_k B[k][j]; B not transposed
                  // (CUBLASLT_EPILOGUE_BGRADA: cuBLASLt's A is our B, and it reduces A only
                  // untransposed)
};

// Row-major C[m, n] = op(A) op(B) with the epilogue. transpose_a: A is stored k x m (false:
// m x k); transpose_b: B is stored n x k (false: k x n); every matrix packed (leading dimension
// its row length). The precision is the arithmetic and the operands' storage:
//   fp32  A, B fp32; CUBLAS_COMPUTE_32F (true fp32 on the CUDA cores)
//   tf32  A, B fp32; CUBLAS_COMPUTE_32F_FAST_TF32 (tensor cores, inputs rounded to TF32)
//   bf16  A, B stored as bf16; CUBLAS_COMPUTE_32F (tensor cores, fp32 accumulation)
// C is fp32, or bf16 (c_bf16, bf16 operands only). The bias (read) or bias gradient (written) has
// n values of C's type, as cuBLASLt requires.
struct LtProduct {
  const char* name = "";  // for messages: "x*W1"
  bool transpose_a = false, transpose_b = false;
  int m = 0, n = 0, k = 0;
  const void* a = nullptr;
  const void* b = nullptr;
  void* c = nullptr;
  Precision precision = Precision::kFp32;
  bool c_bf16 = false;
  LtEpilogue epilogue = LtEpilogue::kNone;
  void* bias = nullptr;
  float alpha = 1.0f;
  // kBiasGradient only: false asks for the unfused form that stands in where cuBLASLt offers no
  // BGRADA for the product (the tests compare both).
  bool fuse_bias_gradient = true;
};

// Workspace cuBLASLt may use per product (NVIDIA's recommendation for Hopper is 32 MiB; the
// backend's products run one after another on one stream, so they share one).
inline constexpr std::size_t kLtWorkspaceBytes = std::size_t(32) << 20;

// One LtProduct, planned at construction: cuBLASLt's heuristic picks the algorithm for its shapes,
// types, epilogue and the alignment of its very pointers (which therefore must not change). A
// bias gradient cuBLASLt cannot fuse into the product becomes a second product (ones * B), so the
// result is the same either way; fused() tells which.
class LtMatmul {
 public:
  LtMatmul() = default;
  LtMatmul(cublasLtHandle_t handle, const LtProduct& product, void* workspace,
           std::size_t workspace_bytes);
  ~LtMatmul();
  LtMatmul(LtMatmul&&) noexcept;
  LtMatmul& operator=(LtMatmul&&) noexcept;

  // Enqueues the product on `stream` (no host synchronisation; capturable into a CUDA graph).
  void run(cudaStream_t stream) const;
  // Whether the epilogue runs inside the one product (false: the bias gradient's second product).
  bool fused() const;

 private:
  struct Plan;
  // Describes the product in `plan` and asks the heuristic for its algorithm: false if there is
  // none.
  static bool find_algorithm(Plan& plan, cublasLtHandle_t handle, const LtProduct& product,
                             void* workspace, std::size_t workspace_bytes);
  std::unique_ptr<Plan> plan_;
};

}  // namespace mnist
