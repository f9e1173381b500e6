// TF's Adam update for one parameter, shared by every kernel that applies it (the standalone
// update, the weight-gradient epilogue, and the split-K reduction), so the formula lives once.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace mnist::kernels {

struct AdamRule {
  float lr_t, beta1, beta2, eps;

  // lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t) for step t (1-based).
  __device__ static AdamRule at(float lr, float beta1, float beta2, float eps, std::int64_t t) {
    const float tf = static_cast<float>(t);
    return {lr * sqrtf(1.0f - powf(beta2, tf)) / (1.0f - powf(beta1, tf)), beta1, beta2, eps};
  }

  // m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; p -= lr_t * m / (sqrt(v) + eps).
  __device__ void apply(float& p, float& m, float& v, float g) const {
    m = beta1 * m + (1.0f - beta1) * g;
    v = beta2 * v + (1.0f - beta2) * g * g;
    p -= lr_t * m / (sqrtf(v) + eps);
  }
};

}  // namespace mnist::kernels
