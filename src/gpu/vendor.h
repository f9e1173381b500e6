// RAII and error checks for the vendor libraries (cuBLAS, cuDNN) used by the baseline backend and
// the benchmark's GEMM comparison. Failures become Error(kGpuUnusable): exit 4, like a CUDA error.
#pragma once

#include <cublas_v2.h>
#include <cudnn.h>

#include <string>

#include "error.h"
#include "kernels/common/precision.h"

namespace mnist {

inline void cublas_check(cublasStatus_t rc, const char* what, const char* file, int line) {
  if (rc != CUBLAS_STATUS_SUCCESS) {
    throw Error(ExitCode::kGpuUnusable, std::string("cuBLAS error ") + cublasGetStatusName(rc) +
                                            " in " + what + " at " + file + ":" +
                                            std::to_string(line));
  }
}
inline void cudnn_check(cudnnStatus_t rc, const char* what, const char* file, int line) {
  if (rc != CUDNN_STATUS_SUCCESS) {
    throw Error(ExitCode::kGpuUnusable, std::string("cuDNN error ") + cudnnGetErrorString(rc) +
                                            " in " + what + " at " + file + ":" +
                                            std::to_string(line));
  }
}
#define MNIST_CUBLAS_CHECK(call) ::mnist::cublas_check((call), #call, __FILE__, __LINE__)
#define MNIST_CUDNN_CHECK(call) ::mnist::cudnn_check((call), #call, __FILE__, __LINE__)

class CublasHandle {
 public:
  // Pedantic math: true fp32, no TF32 shortcuts, for every call whose compute type is implied
  // (cublasSgemm). An explicit compute type (sgemm_row_major's tensor-core precisions) is not
  // overridden by it (cublas_api.h).
  explicit CublasHandle(cudaStream_t stream) {
    MNIST_CUBLAS_CHECK(cublasCreate(&h_));
    MNIST_CUBLAS_CHECK(cublasSetStream(h_, stream));
    MNIST_CUBLAS_CHECK(cublasSetMathMode(h_, CUBLAS_PEDANTIC_MATH));
  }
  ~CublasHandle() { cublasDestroy(h_); }
  CublasHandle(const CublasHandle&) = delete;
  CublasHandle& operator=(const CublasHandle&) = delete;
  cublasHandle_t get() const { return h_; }

 private:
  cublasHandle_t h_{};
};

class CudnnHandle {
 public:
  explicit CudnnHandle(cudaStream_t stream) {
    MNIST_CUDNN_CHECK(cudnnCreate(&h_));
    MNIST_CUDNN_CHECK(cudnnSetStream(h_, stream));
  }
  ~CudnnHandle() { cudnnDestroy(h_); }
  CudnnHandle(const CudnnHandle&) = delete;
  CudnnHandle& operator=(const CudnnHandle&) = delete;
  cudnnHandle_t get() const { return h_; }

 private:
  cudnnHandle_t h_{};
};

// A packed NCHW float tensor descriptor (a row-major rows x cols matrix is n = rows, c = cols for
// softmax over each row; an element-wise op sees it as one rows x cols image: 1 x 1 x rows x cols).
class TensorDesc {
 public:
  TensorDesc(int n, int c, int h = 1, int w = 1) {
    MNIST_CUDNN_CHECK(cudnnCreateTensorDescriptor(&d_));
    MNIST_CUDNN_CHECK(
        cudnnSetTensor4dDescriptor(d_, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, n, c, h, w));
  }
  ~TensorDesc() { cudnnDestroyTensorDescriptor(d_); }
  TensorDesc(const TensorDesc&) = delete;
  TensorDesc& operator=(const TensorDesc&) = delete;
  cudnnTensorDescriptor_t get() const { return d_; }

 private:
  cudnnTensorDescriptor_t d_{};
};

class ReluDesc {
 public:
  ReluDesc() {
    MNIST_CUDNN_CHECK(cudnnCreateActivationDescriptor(&d_));
    MNIST_CUDNN_CHECK(
        cudnnSetActivationDescriptor(d_, CUDNN_ACTIVATION_RELU, CUDNN_NOT_PROPAGATE_NAN, 0.0));
  }
  ~ReluDesc() { cudnnDestroyActivationDescriptor(d_); }
  ReluDesc(const ReluDesc&) = delete;
  ReluDesc& operator=(const ReluDesc&) = delete;
  cudnnActivationDescriptor_t get() const { return d_; }

 private:
  cudnnActivationDescriptor_t d_{};
};

// Row-major C[m,n] = op(A) * op(B) + beta * C through column-major cuBLAS (C^T = op(B)^T op(A)^T).
// transpose_a: A is stored k x m and used transposed (false: stored m x k); likewise transpose_b
// for B (stored n x k when set). fp32 operands and result; `precision` picks the arithmetic:
// cublasSgemm for fp32, cublasGemmEx with CUBLAS_COMPUTE_32F_FAST_TF32 or _FAST_16BF (tensor cores,
// inputs rounded inside cuBLAS, fp32 accumulation) for tf32 and bf16. cuBLAS documents _FAST_16BF
// as "may down-convert to BF16 or TF32": its bf16 may run as TF32.
void sgemm_row_major(cublasHandle_t h, bool transpose_a, bool transpose_b, int m, int n, int k,
                     const float* a, const float* b, float* c, float beta = 0.0f,
                     Precision precision = Precision::kFp32);

}  // namespace mnist
