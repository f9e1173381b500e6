// The mean loss of a batch (read only when a log line needs it), and the per-step scalars of the
// summaries.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace mnist::kernels {

// *out = mean of n values (one block, fixed order: deterministic).
void mean(const float* in, float* out, int n, cudaStream_t stream);

// The scalars of the training step just taken, kept for the summaries: with t = *step (the step
// convention: the loss kernel has counted it), metrics[(t - 1) % capacity] = {mean of row_loss
// (the same sum as mean()), fraction of row_correct set}. One block.
void step_metrics(const float* row_loss, const std::uint8_t* row_correct, int rows,
                  const std::int64_t* step, float2* metrics, int capacity, cudaStream_t stream);

}  // namespace mnist::kernels
