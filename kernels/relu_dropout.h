// Backward of the fused bias + ReLU + inverted-dropout epilogue (the forward lives in gemm.h).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

namespace mnist::kernels {

// dz[i] = h[i] > 0 ? dh[i] / keep_prob : 0, where h is the forward output: it is positive exactly
// where the ReLU passed and dropout kept, so the mask need not be stored or redrawn.
void relu_dropout_backward(const float* dh, const float* h, float* dz, std::size_t n,
                           float keep_prob, cudaStream_t stream);

}  // namespace mnist::kernels
