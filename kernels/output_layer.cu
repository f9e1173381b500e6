#include "cuda_check.h"
#include "launch.cuh"
#include "output_layer.h"
#include "philox.h"

namespace mnist::kernels {
namespace {

constexpr int kWarpsPerBlock = 8;   // count: one warp per row
constexpr int kTrainThreads = 128;  // train: one block per row, ~4 hidden units per thread

// z += h_i * W2[i, :]
__device__ __forceinline__ void add_unit(float (&z)[kOutputClasses], float hv,
                                         const float* __restrict__ w2, int i) {
  const float* w = w2 + std::size_t(i) * kOutputClasses;
#pragma unroll
  for (int j = 0; j < kOutputClasses; ++j) z[j] = fmaf(hv, w[j], z[j]);
}

__device__ __forceinline__ void warp_sum(float (&z)[kOutputClasses]) {
#pragma unroll
  for (int j = 0; j < kOutputClasses; ++j)
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2)
      z[j] += __shfl_xor_sync(0xffffffffu, z[j], offset);
}

// One warp per row: lanes stride over the hidden units, then a butterfly reduction leaves all ten
// logits in every lane.
__device__ __forceinline__ void row_logits(const float* __restrict__ h_row, int hidden,
                                           const float* __restrict__ w2,
                                           const float* __restrict__ b2, int lane,
                                           float (&z)[kOutputClasses]) {
#pragma unroll
  for (int j = 0; j < kOutputClasses; ++j) z[j] = 0.0f;
  for (int i = lane; i < hidden; i += 32) add_unit(z, h_row[i], w2, i);
  warp_sum(z);
#pragma unroll
  for (int j = 0; j < kOutputClasses; ++j) z[j] += b2[j];
}

// h[r, i] = dropout(relu(bias[i] + sum over slices)), the forward's epilogue done here.
__device__ __forceinline__ float finish_hidden(const SplitHidden& split, const float* part,
                                               std::size_t slice, std::uint64_t drop_step,
                                               std::uint32_t index, int i) {
  float v = split.bias[i];
#pragma unroll 4
  for (int s = 0; s < split.splits; ++s) v += part[s * slice + i];
  v = fmaxf(v, 0.0f);
  if (split.act.keep_prob < 1.0f)
    v = dropout_uniform(split.act.seed, drop_step, index) < split.act.keep_prob
            ? v / split.act.keep_prob
            : 0.0f;
  return v;
}

// One block per row: each thread takes hidden units tid, tid + 128, ... (four loads in flight at
// a time), the ten partial logits are summed across the block in a fixed order, every thread
// then evaluates the softmax of the row, and writes dh for its units.
__global__ void __launch_bounds__(kTrainThreads)
    output_layer_train_kernel(float* __restrict__ h, SplitHidden split, int rows, int hidden,
                              const float* __restrict__ w2, const float* __restrict__ b2,
                              const std::uint8_t* __restrict__ labels, float keep_prob,
                              float* __restrict__ row_loss, float* __restrict__ dlogits,
                              float* __restrict__ dh, std::int64_t* step) {
  __shared__ float warp_logits[kTrainThreads / 32][kOutputClasses];
  const int r = blockIdx.x, tid = threadIdx.x, lane = tid % 32;
  await_previous_kernel();
  if (r == 0 && tid == 0) *step += 1;
  float* h_row = h + std::size_t(r) * hidden;
  float z[kOutputClasses] = {};
  constexpr int kUnroll = 4;
  if (split.partials) {
    const std::size_t slice = std::size_t(rows) * hidden;
    const float* part = split.partials + std::size_t(r) * hidden;
    const auto drop_step =
        split.act.keep_prob < 1.0f ? static_cast<std::uint64_t>(*split.act.step) : 0;
    for (int i0 = tid; i0 < hidden; i0 += kUnroll * kTrainThreads) {
#pragma unroll
      for (int c = 0; c < kUnroll; ++c) {
        const int i = i0 + c * kTrainThreads;
        if (i >= hidden) break;
        const float v = finish_hidden(split, part, slice, drop_step,
                                      static_cast<std::uint32_t>(std::size_t(r) * hidden + i), i);
        h_row[i] = v;
        add_unit(z, v, w2, i);
      }
    }
  } else {
    for (int i0 = tid; i0 < hidden; i0 += kUnroll * kTrainThreads) {
#pragma unroll
      for (int c = 0; c < kUnroll; ++c) {
        const int i = i0 + c * kTrainThreads;
        if (i >= hidden) break;
        add_unit(z, h_row[i], w2, i);
      }
    }
  }
  warp_sum(z);
  if (lane == 0)
#pragma unroll
    for (int j = 0; j < kOutputClasses; ++j) warp_logits[tid / 32][j] = z[j];
  __syncthreads();
#pragma unroll
  for (int j = 0; j < kOutputClasses; ++j) {
    z[j] = b2[j];
#pragma unroll
    for (int w = 0; w < kTrainThreads / 32; ++w) z[j] += warp_logits[w][j];
  }

  float zmax = z[0];
#pragma unroll
  for (int j = 1; j < kOutputClasses; ++j) zmax = fmaxf(zmax, z[j]);
  float sum = 0.0f;
#pragma unroll
  for (int j = 0; j < kOutputClasses; ++j) sum += __expf(z[j] - zmax);
  const float log_sum = __logf(sum);
  const int label = labels[r];
  float dz[kOutputClasses];
  float z_label = 0.0f;
#pragma unroll
  for (int j = 0; j < kOutputClasses; ++j) {
    const float p = __expf(z[j] - zmax - log_sum);
    dz[j] = (p - (j == label ? 1.0f : 0.0f)) / rows;
    if (j == label) z_label = z[j];
    if (tid == j) dlogits[std::size_t(r) * kOutputClasses + j] = dz[j];
  }
  if (tid == 0) row_loss[r] = log_sum - (z_label - zmax);
  const float inv_keep = 1.0f / keep_prob;
  for (int i = tid; i < hidden; i += kTrainThreads) {
    const float* w = w2 + std::size_t(i) * kOutputClasses;
    float s = 0.0f;
#pragma unroll
    for (int j = 0; j < kOutputClasses; ++j) s = fmaf(dz[j], w[j], s);
    dh[std::size_t(r) * hidden + i] = h_row[i] > 0.0f ? s * inv_keep : 0.0f;
  }
}

__global__ void output_layer_count_kernel(const float* __restrict__ h, int rows, int hidden,
                                          const float* __restrict__ w2,
                                          const float* __restrict__ b2,
                                          const std::uint8_t* __restrict__ labels, int* correct) {
  __shared__ int block_correct;
  if (threadIdx.x == 0) block_correct = 0;
  __syncthreads();
  const int lane = threadIdx.x % 32;
  const int r = blockIdx.x * kWarpsPerBlock + threadIdx.x / 32;
  if (r < rows) {
    float z[kOutputClasses];
    row_logits(h + std::size_t(r) * hidden, hidden, w2, b2, lane, z);
    int best = 0;
#pragma unroll
    for (int j = 1; j < kOutputClasses; ++j) best = z[j] > z[best] ? j : best;
    if (lane == 0 && best == labels[r]) atomicAdd(&block_correct, 1);
  }
  __syncthreads();
  if (threadIdx.x == 0 && block_correct) atomicAdd(correct, block_correct);
}

unsigned blocks_for(int rows) {
  return static_cast<unsigned>((rows + kWarpsPerBlock - 1) / kWarpsPerBlock);
}

}  // namespace

void output_layer_train(float* h, const SplitHidden& split, int rows, int hidden, const float* w2,
                        const float* b2, const std::uint8_t* labels, float keep_prob,
                        float* row_loss, float* dlogits, float* dh, std::int64_t* step,
                        cudaStream_t stream) {
  launch("output_layer_train_kernel", output_layer_train_kernel, static_cast<unsigned>(rows),
         kTrainThreads, stream, h, split, rows, hidden, w2, b2, labels, keep_prob, row_loss,
         dlogits, dh, step);
}

void output_layer_count_correct(const float* h, int rows, int hidden, const float* w2,
                                const float* b2, const std::uint8_t* labels, int* correct,
                                cudaStream_t stream) {
  output_layer_count_kernel<<<blocks_for(rows), kWarpsPerBlock * 32, 0, stream>>>(
      h, rows, hidden, w2, b2, labels, correct);
  MNIST_LAUNCH_CHECK("output_layer_count_kernel");
}

}  // namespace mnist::kernels
