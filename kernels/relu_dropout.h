// Backward of the fused bias + ReLU + inverted-dropout epilogue (the forward lives in gemm.h).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace mnist::kernels {

// dz[i] = h[i] > 0 ? dh[i] / keep_prob : 0, where h is the forward output: it is positive exactly
// where the ReLU passed and dropout kept, so the mask need not be stored or redrawn.
void relu_dropout_backward(const float* dh, const float* h, float* dz, std::size_t n,
                           float keep_prob, cudaStream_t stream);

}  // namespace mnist::kernels

namespace mnist::kernels {

// h[i] = Philox-kept(seed, *step, i) ? a[i] / keep_prob : 0 for the rows x cols activations a
// (the cuBLAS/cuDNN baseline's dropout; the same mask as the fused forward epilogue).
void dropout_forward(const float* a, float* h, std::size_t n, float keep_prob, std::uint64_t seed,
                     const std::int64_t* step, cudaStream_t stream);

}  // namespace mnist::kernels
