// The MLP's output layer (hidden -> 10 classes) fused per batch row: logits, softmax
// cross-entropy, its gradient, and the gradient back through W2 and the ReLU/dropout mask.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "gemm.h"

namespace mnist::kernels {

// The hidden layer still as split-K partial products (linear_forward_bytes_split): the output
// layer first finishes it, h[r, i] = dropout(relu(bias[i] + sum_s partials[s][r][i])), adding the
// slices in order, and writes h for the weight gradient. act.step points at the step the batch was
// drawn at (GatherRecord::batch_step).
struct SplitHidden {
  const float* partials = nullptr;  // null: h is already finished
  int splits = 0;
  const float* bias = nullptr;
  ReluDropout act{};
};

// Per row r of h (rows x hidden, post-ReLU/dropout; first finished from `split` if given):
//   logits = h[r] * W2 + b2; row_loss[r] = logsumexp(logits) - logits[label];
//   row_correct[r] = argmax(logits) == label (first maximum);
//   dlogits[r] = (softmax(logits) - onehot(label)) / rows;
//   dh[r, i] = h[r, i] > 0 ? (dlogits[r] . W2[i, :]) / keep_prob : 0.
// Block 0 also advances *step (the step convention, adam_rule.cuh): the forward kernel has read
// it, and Adam reads the advanced value.
void output_layer_train(float* h, const SplitHidden& split, int rows, int hidden, const float* w2,
                        const float* b2, const std::uint8_t* labels, float keep_prob,
                        float* row_loss, std::uint8_t* row_correct, float* dlogits, float* dh,
                        std::int64_t* step, cudaStream_t stream);

// *correct += rows whose argmax of h[r] * W2 + b2 (first maximum) equals labels[r]; with a
// row_loss, also row_loss[r] = logsumexp(logits) - logits[label] (the evaluation's cross-entropy).
void output_layer_count_correct(const float* h, int rows, int hidden, const float* w2,
                                const float* b2, const std::uint8_t* labels, int* correct,
                                float* row_loss, cudaStream_t stream);

}  // namespace mnist::kernels
