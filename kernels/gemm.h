// Tiled fp32 matrix products for the model's three shapes of product. Row-major throughout.
// Every launcher checks its launch; all are stream-ordered and graph-capturable.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace mnist::kernels {

// Optional fused epilogue of the forward product: ReLU then inverted dropout with the Philox mask
// of (seed, *step, row * n + col), scaled by 1 / keep_prob. keep_prob >= 1 means no dropout.
struct ReluDropout {
  bool enabled = false;
  float keep_prob = 1.0f;
  std::uint64_t seed = 0;
  const std::int64_t* step = nullptr;  // device pointer: the training step counter
};

// Y[m,n] = X[m,k] * W[k,n] + bias[n], then the epilogue.
void linear_forward(const float* x, const float* w, const float* bias, float* y, int m, int k,
                    int n, const ReluDropout& epilogue, cudaStream_t stream);

// C[k,n] = A[m,k]^T * B[m,n]: the weight gradient X^T * dY.
void matmul_at_b(const float* a, const float* b, float* c, int m, int k, int n,
                 cudaStream_t stream);

// C[m,k] = A[m,n] * B[k,n]^T: the input gradient dY * W^T.
void matmul_a_bt(const float* a, const float* b, float* c, int m, int n, int k,
                 cudaStream_t stream);

}  // namespace mnist::kernels
