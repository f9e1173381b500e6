// Softmax cross-entropy, forward and backward fused, and the eval's argmax.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace mnist::kernels {

// Per row: row_loss[r] = logsumexp(z) - z[label]; row_correct[r] = argmax(z) == label (first
// maximum); dlogits = (softmax(z) - onehot(label)) / rows. Numerically stable (max subtracted).
// Thread 0 also advances *step (the softmax model's loss: the step convention, adam_rule.cuh).
void softmax_xent(const float* logits, const std::uint8_t* labels, float* row_loss,
                  std::uint8_t* row_correct, float* dlogits, int rows, int classes,
                  std::int64_t* step, cudaStream_t stream);

// *correct += number of rows whose argmax (first maximum) equals the label; with a row_loss, also
// row_loss[r] = logsumexp(z) - z[label] (the evaluation's cross-entropy).
void count_correct(const float* logits, const std::uint8_t* labels, int rows, int classes,
                   int* correct, float* row_loss, cudaStream_t stream);

}  // namespace mnist::kernels
