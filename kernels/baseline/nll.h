// The baseline's loss: softmax cross-entropy (the negative log-likelihood of the softmax) from the
// output product's logits, and its gradient in the storage the backward products read.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace mnist::kernels {

// Per row of logits[rows, classes] (fp32): row_loss[r] = logsumexp(z) - z[label];
// row_correct[r] = argmax(z) == label (first maximum); dlogits[r, :] = (softmax(z) -
// onehot(label)) / rows, stored as T (float, or __nv_bfloat16 rounded to nearest for the bf16
// products). Max subtracted first. Thread 0 also advances *step (the step convention,
// adam_rule.cuh: the loss counts the step).
template <typename T>
void softmax_nll(const float* logits, const std::uint8_t* labels, float* row_loss,
                 std::uint8_t* row_correct, T* dlogits, int rows, int classes, std::int64_t* step,
                 cudaStream_t stream);

}  // namespace mnist::kernels
