// TF's Adam update for one parameter, shared by every kernel that applies it (the weight-gradient
// epilogue, the split-K reduction, and the baseline's standalone update), so the formula lives
// once on the device. The CPU reference's cpu::adam is its host twin, written apart on purpose:
// host pow and the device's fast-math powf round differently.
//
// The step convention, one for every GPU kernel and both GPU backends: a device int64 `step`
// counts the training steps taken. Within a step, the kernels before the loss read it as the
// step's 0-based index (its batch in the sample stream, its dropout mask); the loss kernel then
// advances it (softmax_xent, output_layer_train, or the baseline's nll_from_log_softmax), so the
// kernels after the loss (Adam) read t = *step, the 1-based step number of TF's Adam. The host's
// CpuBackend follows the same order: step += 1, then Adam with t = step.
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
