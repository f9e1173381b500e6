// The baseline's dropout, forward and backward (cuDNN has no counter-based dropout; the mask must
// match ours). Our backend fuses both into its GEMM epilogue and output layer instead.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace mnist::kernels {

// h[i] = Philox-kept(seed, *step, i) ? a[i] / keep_prob : 0 over n activations: the same mask as
// our fused forward epilogue (gemm.h's ReluDropout).
void dropout_forward(const float* a, float* h, std::size_t n, float keep_prob, std::uint64_t seed,
                     const std::int64_t* step, cudaStream_t stream);

// dz[i] = h[i] > 0 ? dh[i] / keep_prob : 0, where h is the forward output: it is positive exactly
// where the ReLU passed and dropout kept, so the mask need not be stored or redrawn.
void relu_dropout_backward(const float* dh, const float* h, float* dz, std::size_t n,
                           float keep_prob, cudaStream_t stream);

}  // namespace mnist::kernels
