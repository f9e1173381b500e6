// One fused Adam update over every parameter of the model (they share one flat array).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace mnist::kernels {

// TF's AdamOptimizer with t = *step + 1: lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t);
// m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; p -= lr_t * m / (sqrt(v) + eps).
void adam_update(float* params, const float* grads, float* m, float* v, std::size_t n, float lr,
                 float beta1, float beta2, float eps, const std::int64_t* step,
                 cudaStream_t stream);

// *step += 1: the last node of a training step, so the next replay sees the next step.
void advance_step(std::int64_t* step, cudaStream_t stream);

}  // namespace mnist::kernels
