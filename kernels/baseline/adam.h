// The baseline's optimizer: one Adam update over every parameter of the model (they share one flat
// array), after cuBLASLt has written the whole gradient. Our backend applies the same rule
// (adam_rule.cuh) inside its weight-gradient kernels instead. For --precision bf16 the update also
// writes the bf16 copy of the parameters the products read (the fp32 array stays the master).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace mnist::kernels {

// TF's AdamOptimizer with t = *step (the loss kernel has counted this step: the step convention,
// adam_rule.cuh): lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t); m = b1 m + (1 - b1) g;
// v = b2 v + (1 - b2) g^2; p -= lr_t * m / (sqrt(v) + eps). With params_bf16, also
// params_bf16[i] = the updated params[i] rounded to nearest.
void adam_update(float* params, const float* grads, float* m, float* v, std::size_t n, float lr,
                 float beta1, float beta2, float eps, const std::int64_t* step, cudaStream_t stream,
                 __nv_bfloat16* params_bf16 = nullptr);

// out[i] = in[i] rounded to the nearest bf16, for n values (the bf16 copy of parameters set from
// outside the step: the initial ones, a checkpoint's).
void round_to_bf16(const float* in, __nv_bfloat16* out, std::size_t n, cudaStream_t stream);

}  // namespace mnist::kernels
