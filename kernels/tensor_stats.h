// Statistics of a tensor for TensorBoard summaries, reduced on the GPU: min, max, sum, sum of
// squares and the counts over a histogram's bucket edges (TF's default edges, passed in by the
// host), so only a few kilobytes come back however large the tensor is.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace mnist::kernels {

// A statistics slot: kStatsHeader doubles, then one count per bucket.
enum StatsField {
  kStatsMin,
  kStatsMax,
  kStatsSum,
  kStatsSumSquares,
  kStatsNonFinite,
  kStatsHeader
};

inline std::size_t stats_slot_doubles(int buckets) { return kStatsHeader + std::size_t(buckets); }

// Of what the statistics are taken: the values, or max(value, 0) (a ReLU's output).
enum class StatsOf { kValues, kRelu };

// One tensor of a batch of reductions.
struct StatsInput {
  const float* x = nullptr;
  std::int64_t n = 0;  // >= 1
  StatsOf f = StatsOf::kValues;
};
constexpr int kMaxStatsInputs = 8;
struct StatsBatch {
  StatsInput inputs[kMaxStatsInputs];
  int count = 0;
};

// Scratch a reduction needs (doubles), whatever the tensors' sizes.
std::size_t tensor_stats_scratch_doubles();

// Writes the statistics of f(x[0..n)) (n >= 1) into `slot`: min, max, sum and sum of squares of
// the finite values, each widened to double; the number of NaNs and infinities (left out of
// everything else); and per bucket b the number of values v with limits[b-1] <= v < limits[b]
// (limits ascending, `buckets` of them, the last DBL_MAX: the first limit greater than v). The
// result is the same bit for bit on every run (fixed grid, fixed reduction order; counts exact).
// Stream-ordered; `scratch` (tensor_stats_scratch_doubles()) must not be shared by two reductions
// in flight.
void tensor_stats(const float* x, std::int64_t n, StatsOf f, const double* limits, int buckets,
                  double* slot, double* scratch, cudaStream_t stream);

// The same for up to kMaxStatsInputs tensors at once (three launches in all, however many):
// input t goes to the slot at slots + t * stats_slot_doubles(buckets).
void tensor_stats(const StatsBatch& batch, const double* limits, int buckets, double* slots,
                  double* scratch, cudaStream_t stream);

// The hidden layer of the summaries' forward pass, from the product's split-K slices
// (linear_forward_bytes_split; splits = 1 and bias = null: an unsplit product that already holds
// the bias): pre[i] = bias[i % n] + the slices in order, and hidden[i] = dropout(relu(pre[i])) with
// the training step's Philox mask of (seed, *step, i) scaled by 1 / keep_prob (keep_prob >= 1:
// ReLU only), the same values the step's own forward computes. rows x n, row-major.
void finish_summary_hidden(const float* partials, int splits, const float* bias, float* pre,
                           float* hidden, int rows, int n, float keep_prob, std::uint64_t seed,
                           const std::int64_t* step, cudaStream_t stream);

// The summaries' logits: logits[r, :] = hidden[r, :] * w2 + b2 (hidden x 10, row-major), one block
// per row (the GEMM's tiles are sized for wide outputs; ten columns would leave it idle).
void summary_logits(const float* hidden, int rows, int units, const float* w2, const float* b2,
                    float* logits, cudaStream_t stream);

}  // namespace mnist::kernels
