// The cuBLAS/cuDNN baseline's loss: cuDNN computes the log-softmax, this kernel the negative
// log-likelihood and its gradient.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace mnist::kernels {

// From log-probabilities (cuDNN's log-softmax): row_loss[r] = -logp[r, label],
// row_correct[r] = argmax(logp[r]) == label (first maximum), and dlogp[r, :] = -onehot(label) /
// rows, the input cudnnSoftmaxBackward turns into dlogits. Thread 0 also advances *step (the step
// convention, adam_rule.cuh: the loss counts the step).
void nll_from_log_softmax(const float* logp, const std::uint8_t* labels, float* row_loss,
                          std::uint8_t* row_correct, float* dlogp, int rows, int classes,
                          std::int64_t* step, cudaStream_t stream);

}  // namespace mnist::kernels
