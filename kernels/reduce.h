// Reductions: bias gradients (column sums) and the mean loss.
#pragma once

#include <cuda_runtime.h>

namespace mnist::kernels {

// out[j] = sum over r of in[r, j] for an rows x cols row-major matrix (fixed order: deterministic).
void column_sums(const float* in, float* out, int rows, int cols, cudaStream_t stream);

// *out = mean of n values (one block, fixed order: deterministic).
void mean(const float* in, float* out, int n, cudaStream_t stream);

}  // namespace mnist::kernels
