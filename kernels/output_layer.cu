#include <algorithm>

#include "common/philox.h"
#include "launch.cuh"
#include "output_layer.h"

namespace mnist::kernels {
namespace {

// A block of 128 threads per row, looping over rows (grid-stride). A block that handles several
// rows first stages W2 in shared memory: every row reads all of it, and its 40-byte rows read
// straight from global memory by adjacent threads cost ten cache lines per warp load. Hidden
// layers wider than one staged chunk are walked chunk by chunk. A block with a single row (small
// batches) reads W2 from global memory directly: staging would only add latency.
constexpr int kThreads = 128;
constexpr int kChunkUnits = 1024;  // at most 40 KB of W2 per chunk (under the 48 KB default)
constexpr int kBlocksPerSm = 8;

// W2 units [first, first + chunk), staged or not. Every thread keeps its own copy of this
// bookkeeping (all take the same path), so only the weights themselves are shared.
struct W2View {
  const float* w2;  // global
  float* staged;    // dynamic shared memory (chunk * 10 floats), or null: read w2 directly
  int hidden, chunk, first;

  __device__ static W2View make(const float* w2, float* shared, int hidden, bool stage) {
    return stage ? W2View{w2, shared, hidden, min(hidden, kChunkUnits), -1}
                 : W2View{w2, nullptr, hidden, hidden, 0};
  }
  // Makes the chunk starting at chunk_first resident (all threads call it; it syncs if it loads).
  __device__ void hold(int chunk_first) {
    if (first == chunk_first) return;
    __syncthreads();
    const int count = min(chunk, hidden - chunk_first) * kClasses;
    const float* src = w2 + std::size_t(chunk_first) * kClasses;
    for (int e = threadIdx.x; e < count; e += kThreads) staged[e] = src[e];
    __syncthreads();
    first = chunk_first;
  }
  __device__ const float* unit(int i) const {
    return staged ? staged + (i - first) * kClasses : w2 + std::size_t(i) * kClasses;
  }
};

extern __shared__ float staged_w2[];

// Block-wide sum of ten per-thread values, + b2, fixed order; every thread gets the result.
__device__ __forceinline__ void block_logits(float (&z)[kClasses], const float* __restrict__ b2,
                                             float (&warp_part)[kThreads / 32][kClasses]) {
#pragma unroll
  for (int j = 0; j < kClasses; ++j)
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2)
      z[j] += __shfl_xor_sync(0xffffffffu, z[j], offset);
  if (threadIdx.x % 32 == 0)
#pragma unroll
    for (int j = 0; j < kClasses; ++j) warp_part[threadIdx.x / 32][j] = z[j];
  __syncthreads();
#pragma unroll
  for (int j = 0; j < kClasses; ++j) {
    z[j] = b2[j];
#pragma unroll
    for (int w = 0; w < kThreads / 32; ++w) z[j] += warp_part[w][j];
  }
  __syncthreads();  // warp_part is reused by the next row
}

// A row's softmax cross-entropy from its logits: the first maximum, the log-sum-exp about the
// maximum, and the loss against `label`. z is indexed by unrolled constants only, so it stays in
// registers (an index known only at run time would put it in local memory).
struct RowSoftmax {
  int best;
  float zmax, log_sum, loss;
  // d loss / d z[j] of the row, divided by `rows` (the batch's mean).
  __device__ float gradient(const float (&z)[kClasses], int j, int label, int rows) const {
    return (__expf(z[j] - zmax - log_sum) - (j == label ? 1.0f : 0.0f)) / rows;
  }
};

__device__ __forceinline__ RowSoftmax row_softmax(const float (&z)[kClasses], int label) {
  int best = 0;
  float zmax = z[0];
#pragma unroll
  for (int j = 1; j < kClasses; ++j) {
    if (z[j] > zmax) best = j;
    zmax = fmaxf(zmax, z[j]);
  }
  float sum = 0.0f, z_label = 0.0f;
#pragma unroll
  for (int j = 0; j < kClasses; ++j) {
    sum += __expf(z[j] - zmax);
    if (j == label) z_label = z[j];
  }
  const float log_sum = __logf(sum);
  return {best, zmax, log_sum, log_sum - (z_label - zmax)};
}

// Sources of h[r, i]: value(i) reads (or computes) it, keep(i, v) stores what was computed. Four
// units are read before any is kept, so their loads are in flight together.
struct ReadHidden {
  const float* row;
  __device__ float value(int i) const { return row[i]; }
  __device__ void keep(int, float) const {}
};

// h[r, i] = dropout(relu(bias[i] + the slices in order)): the forward's epilogue, done here.
struct FinishHidden {
  const SplitHidden& split;
  const float* part;  // this row of slice 0
  std::size_t slice;
  std::uint64_t drop_step;
  std::size_t row_index;  // r * hidden
  float* row;
  __device__ float value(int i) const {
    // All slices are loaded before any is added (a loop of load-then-add would wait for each
    // load in turn); the adds then run in slice order, so the sum is reproducible.
    float slices[kMaxForwardSplits];
#pragma unroll
    for (int s = 0; s < kMaxForwardSplits; ++s)
      slices[s] = s < split.splits ? part[s * slice + i] : 0.0f;
    float v = split.bias[i];
#pragma unroll
    for (int s = 0; s < kMaxForwardSplits; ++s) v += slices[s];
    v = fmaxf(v, 0.0f);
    if (split.act.keep_prob < 1.0f) {
      const auto index = static_cast<std::uint32_t>(row_index + i);
      v = dropout_keep_scaled(v, dropout_uniform(split.act.seed, drop_step, index),
                              split.act.keep_prob);
    }
    return v;
  }
  __device__ void keep(int i, float v) const { row[i] = v; }
};

// z += sum over this thread's hidden units of h[r, i] * W2[i, :].
template <class Hidden>
__device__ __forceinline__ void partial_logits(W2View& staged, int hidden, const Hidden& h,
                                               float (&z)[kClasses]) {
  constexpr int kUnroll = 4;
  for (int c0 = 0; c0 < hidden; c0 += staged.chunk) {
    staged.hold(c0);
    const int end = min(hidden, c0 + staged.chunk);
    for (int i0 = c0 + threadIdx.x; i0 < end; i0 += kUnroll * kThreads) {
      float hv[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int i = i0 + u * kThreads;
        hv[u] = i < end ? h.value(i) : 0.0f;
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int i = i0 + u * kThreads;
        if (i >= end) break;
        h.keep(i, hv[u]);
        const float* w = staged.unit(i);
#pragma unroll
        for (int j = 0; j < kClasses; ++j) z[j] = fmaf(hv[u], w[j], z[j]);
      }
    }
  }
}

__global__ void __launch_bounds__(kThreads)
    output_layer_train_kernel(float* __restrict__ h, SplitHidden split, int rows, int hidden,
                              const float* __restrict__ w2, const float* __restrict__ b2,
                              const std::uint8_t* __restrict__ labels, float keep_prob,
                              float* __restrict__ row_loss, std::uint8_t* __restrict__ row_correct,
                              float* __restrict__ dlogits, float* __restrict__ dh,
                              std::int64_t* step) {
  __shared__ float warp_part[kThreads / 32][kClasses];
  const int tid = threadIdx.x;
  await_previous_kernel();
  W2View staged = W2View::make(w2, staged_w2, hidden, rows > int(gridDim.x));
  if (blockIdx.x == 0 && tid == 0) *step += 1;
  const auto drop_step = split.partials && split.act.keep_prob < 1.0f
                             ? static_cast<std::uint64_t>(*split.act.step)
                             : 0;
  const float inv_keep = 1.0f / keep_prob;
  for (int r = blockIdx.x; r < rows; r += gridDim.x) {
    float* h_row = h + std::size_t(r) * hidden;
    float z[kClasses] = {};
    if (split.partials) {
      const FinishHidden finish{
          split,     split.partials + std::size_t(r) * hidden,       std::size_t(rows) * hidden,
          drop_step, std::size_t(split.act.row_offset + r) * hidden, h_row};
      partial_logits(staged, hidden, finish, z);
    } else {
      partial_logits(staged, hidden, ReadHidden{h_row}, z);
    }
    block_logits(z, b2, warp_part);
    const int label = labels[r];
    const RowSoftmax row = row_softmax(z, label);
    float dz[kClasses];
#pragma unroll
    for (int j = 0; j < kClasses; ++j) {
      dz[j] = row.gradient(z, j, label, rows);
      if (tid == j) dlogits[std::size_t(r) * kClasses + j] = dz[j];
    }
    if (tid == 0) {
      row_loss[r] = row.loss;
      row_correct[r] = row.best == label;
    }
    // dh for the same units this thread summed (it reads back its own h writes). Chunks in
    // reverse: the last one staged is still resident.
    for (int c0 = (hidden - 1) / staged.chunk * staged.chunk; c0 >= 0; c0 -= staged.chunk) {
      staged.hold(c0);
      const int end = min(hidden, c0 + staged.chunk);
      for (int i = c0 + tid; i < end; i += kThreads) {
        const float* w = staged.unit(i);
        float s = 0.0f;
#pragma unroll
        for (int j = 0; j < kClasses; ++j) s = fmaf(dz[j], w[j], s);
        dh[std::size_t(r) * hidden + i] = h_row[i] > 0.0f ? s * inv_keep : 0.0f;
      }
    }
  }
}

__global__ void __launch_bounds__(kThreads)
    output_layer_count_kernel(const float* __restrict__ h, int rows, int hidden,
                              const float* __restrict__ w2, const float* __restrict__ b2,
                              const std::uint8_t* __restrict__ labels, int* correct,
                              float* __restrict__ row_loss) {
  __shared__ float warp_part[kThreads / 32][kClasses];
  W2View staged = W2View::make(w2, staged_w2, hidden, rows > int(gridDim.x));
  int hits = 0;  // counted by thread 0
  for (int r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* h_row = h + std::size_t(r) * hidden;
    float z[kClasses] = {};
    partial_logits(staged, hidden, ReadHidden{h_row}, z);
    block_logits(z, b2, warp_part);
    const int label = labels[r];
    const RowSoftmax row = row_softmax(z, label);
    hits += row.best == label;
    if (row_loss && threadIdx.x == 0) row_loss[r] = row.loss;
  }
  if (threadIdx.x == 0 && hits) atomicAdd(correct, hits);
}

// ---- Many rows: a warp per row. Past one row per block (more rows than blocks_for's grid), the
// block-per-row kernels above walk their rows one after another, each behind two block-wide
// barriers; here each warp takes a row, W2 is staged once per block, and every sum is a warp's
// shuffle reduction (fixed order: reproducible). Hidden layers up to kWarpMaxUnits, no split. ----
constexpr int kWarpThreads = 256, kWarpRows = kWarpThreads / 32;
constexpr int kWarpMaxUnits = 1024, kUnitsPerLane = kWarpMaxUnits / 32;
constexpr int kW2Stride = kClasses + 1;  // odd row stride: lanes' W2 rows in distinct banks

// W2 into shared memory (rows of kW2Stride floats), by the whole block.
__device__ __forceinline__ void stage_w2(const float* __restrict__ w2, int hidden, float* out) {
  for (int e = threadIdx.x; e < hidden * kClasses; e += kWarpThreads)
    out[e / kClasses * kW2Stride + e % kClasses] = w2[e];
  __syncthreads();
}

// This lane's units of row `h_row` (held in hv, units lane, lane + 32, ...) and the row's logits,
// reduced over the warp (every lane gets them).
__device__ __forceinline__ void warp_logits(const float* __restrict__ h_row, int hidden,
                                            const float* w2s, const float* __restrict__ b2,
                                            float (&hv)[kUnitsPerLane], float (&z)[kClasses]) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int t = 0; t < kUnitsPerLane; ++t) {
    const int i = lane + 32 * t;
    hv[t] = i < hidden ? h_row[i] : 0.0f;
  }
#pragma unroll
  for (int j = 0; j < kClasses; ++j) z[j] = 0.0f;
#pragma unroll
  for (int t = 0; t < kUnitsPerLane; ++t) {
    const int i = lane + 32 * t;
    if (i >= hidden) break;
    const float* w = w2s + i * kW2Stride;
#pragma unroll
    for (int j = 0; j < kClasses; ++j) z[j] = fmaf(hv[t], w[j], z[j]);
  }
#pragma unroll
  for (int j = 0; j < kClasses; ++j) {
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2)
      z[j] += __shfl_xor_sync(0xffffffffu, z[j], offset);
    z[j] += b2[j];
  }
}

__global__ void __launch_bounds__(kWarpThreads)
    output_layer_train_warps(const float* __restrict__ h, int rows, int hidden,
                             const float* __restrict__ w2, const float* __restrict__ b2,
                             const std::uint8_t* __restrict__ labels, float keep_prob,
                             float* __restrict__ row_loss, std::uint8_t* __restrict__ row_correct,
                             float* __restrict__ dlogits, float* __restrict__ dh,
                             std::int64_t* step) {
  extern __shared__ float w2s[];
  await_previous_kernel();
  if (blockIdx.x == 0 && threadIdx.x == 0) *step += 1;
  stage_w2(w2, hidden, w2s);
  const int lane = threadIdx.x % 32;
  const float inv_keep = 1.0f / keep_prob;
  for (int r = blockIdx.x * kWarpRows + threadIdx.x / 32; r < rows; r += gridDim.x * kWarpRows) {
    float hv[kUnitsPerLane], z[kClasses];
    warp_logits(h + std::size_t(r) * hidden, hidden, w2s, b2, hv, z);
    const int label = labels[r];
    const RowSoftmax row = row_softmax(z, label);
    float dz[kClasses];
#pragma unroll
    for (int j = 0; j < kClasses; ++j) {
      dz[j] = row.gradient(z, j, label, rows);
      if (lane == j) dlogits[std::size_t(r) * kClasses + j] = dz[j];
    }
    if (lane == 0) {
      row_loss[r] = row.loss;
      row_correct[r] = row.best == label;
    }
#pragma unroll
    for (int t = 0; t < kUnitsPerLane; ++t) {
      const int i = lane + 32 * t;
      if (i >= hidden) break;
      const float* w = w2s + i * kW2Stride;
      float s = 0.0f;
#pragma unroll
      for (int j = 0; j < kClasses; ++j) s = fmaf(dz[j], w[j], s);
      dh[std::size_t(r) * hidden + i] = hv[t] > 0.0f ? s * inv_keep : 0.0f;
    }
  }
}

__global__ void __launch_bounds__(kWarpThreads)
    output_layer_count_warps(const float* __restrict__ h, int rows, int hidden,
                             const float* __restrict__ w2, const float* __restrict__ b2,
                             const std::uint8_t* __restrict__ labels, int* correct,
                             float* __restrict__ row_loss) {
  extern __shared__ float w2s[];
  __shared__ int block_hits;
  if (threadIdx.x == 0) block_hits = 0;
  stage_w2(w2, hidden, w2s);  // its barrier also publishes block_hits = 0
  const int lane = threadIdx.x % 32;
  int hits = 0;  // counted by lane 0
  for (int r = blockIdx.x * kWarpRows + threadIdx.x / 32; r < rows; r += gridDim.x * kWarpRows) {
    float hv[kUnitsPerLane], z[kClasses];
    warp_logits(h + std::size_t(r) * hidden, hidden, w2s, b2, hv, z);
    const int label = labels[r];
    const RowSoftmax row = row_softmax(z, label);
    hits += row.best == label;
    if (row_loss && lane == 0) row_loss[r] = row.loss;
  }
  if (lane == 0 && hits) atomicAdd(&block_hits, hits);
  __syncthreads();
  if (threadIdx.x == 0 && block_hits) atomicAdd(correct, block_hits);
}

// Whether `rows` x `hidden` (unsplit) takes the warp-per-row kernels.
bool warp_per_row(int rows, int hidden) {
  return hidden <= kWarpMaxUnits && rows > device_facts().sms * kBlocksPerSm;
}

// As many blocks as stay resident (two per SM at this kernel's registers), so that each stages W2
// once for several rows of each warp.
unsigned warp_blocks_for(int rows) {
  return static_cast<unsigned>(
      std::min((rows + kWarpRows - 1) / kWarpRows, device_facts().sms * 2));
}

unsigned warp_shared_bytes(int hidden) {
  return static_cast<unsigned>(hidden * kW2Stride * sizeof(float));
}

unsigned blocks_for(int rows) {
  return static_cast<unsigned>(std::min(rows, device_facts().sms * kBlocksPerSm));
}

// Room for a staged W2 chunk when blocks handle several rows (see W2View).
unsigned shared_bytes(int rows, int hidden) {
  if (rows <= static_cast<int>(blocks_for(rows))) return 0;
  return static_cast<unsigned>(std::min(hidden, kChunkUnits) * kClasses * sizeof(float));
}

}  // namespace

void output_layer_train(float* h, const SplitHidden& split, int rows, int hidden, const float* w2,
                        const float* b2, const std::uint8_t* labels, float keep_prob,
                        float* row_loss, std::uint8_t* row_correct, float* dlogits, float* dh,
                        std::int64_t* step, cudaStream_t stream) {
  if (!split.partials && warp_per_row(rows, hidden)) {
    launch(MNIST_HERE, "output_layer_train_warps", output_layer_train_warps, warp_blocks_for(rows),
           kWarpThreads, warp_shared_bytes(hidden), stream, h, rows, hidden, w2, b2, labels,
           keep_prob, row_loss, row_correct, dlogits, dh, step);
    return;
  }
  launch(MNIST_HERE, "output_layer_train_kernel", output_layer_train_kernel, blocks_for(rows),
         kThreads, shared_bytes(rows, hidden), stream, h, split, rows, hidden, w2, b2, labels,
         keep_prob, row_loss, row_correct, dlogits, dh, step);
}

void output_layer_count_correct(const float* h, int rows, int hidden, const float* w2,
                                const float* b2, const std::uint8_t* labels, int* correct,
                                float* row_loss, cudaStream_t stream) {
  if (warp_per_row(rows, hidden)) {
    output_layer_count_warps<<<warp_blocks_for(rows), kWarpThreads, warp_shared_bytes(hidden),
                               stream>>>(h, rows, hidden, w2, b2, labels, correct, row_loss);
    MNIST_LAUNCH_CHECK("output_layer_count_warps");
    return;
  }
  output_layer_count_kernel<<<blocks_for(rows), kThreads, shared_bytes(rows, hidden), stream>>>(
      h, rows, hidden, w2, b2, labels, correct, row_loss);
  MNIST_LAUNCH_CHECK("output_layer_count_kernel");
}

}  // namespace mnist::kernels
