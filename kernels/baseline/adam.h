// The baseline's optimizer: one Adam update over every parameter of the model (they share one flat
// array), after cuBLAS has written the whole gradient. Our backend applies the same rule
// (adam_rule.cuh) inside its weight-gradient kernels instead.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace mnist::kernels {

// TF's AdamOptimizer with t = *step (the loss kernel has counted this step: the step convention,
// adam_rule.cuh): lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t); m = b1 m + (1 - b1) g;
// v = b2 v + (1 - b2) g^2; p -= lr_t * m / (sqrt(v) + eps).
void adam_update(float* params, const float* grads, float* m, float* v, std::size_t n, float lr,
                 float beta1, float beta2, float eps, const std::int64_t* step,
                 cudaStream_t stream);

}  // namespace mnist::kernels
