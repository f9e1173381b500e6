// The baseline's dropout, forward and backward: cuBLASLt's epilogues have no dropout, and the
// mask must match ours (the Philox stream's). Our backend fuses both into its GEMM epilogue and
// output layer instead. T is the activations' storage: float, or __nv_bfloat16 for
// --precision bf16 (values computed in fp32, rounded to nearest when stored).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace mnist::kernels {

// h[i] = Philox-kept(seed, *step, i) ? a[i] / keep_prob : 0 over n activations: the same mask as
// our fused forward epilogue (gemm.h's ReluDropout).
template <typename T>
void dropout_forward(const T* a, T* h, std::size_t n, float keep_prob, std::uint64_t seed,
                     const std::int64_t* step, cudaStream_t stream);

// dz[i] = h[i] > 0 ? dh[i] / keep_prob : 0, where h is the forward output: it is positive exactly
// where the ReLU passed and dropout kept, so the mask need not be stored or redrawn.
template <typename T>
void relu_dropout_backward(const float* dh, const T* h, T* dz, std::size_t n, float keep_prob,
                           cudaStream_t stream);

}  // namespace mnist::kernels
