#include <algorithm>
#include <cfloat>
#include <stdexcept>
#include <string>

#include "common/mnist_shape.h"
#include "common/philox.h"
#include "cuda_error.h"
#include "tensor_stats.h"

namespace mnist::kernels {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxBlocks = 128;          // fixed grid for a given n: the reduction order is fixed
constexpr int kMaxSharedBuckets = 2048;  // TF's default table has 1551 edges
constexpr int kPartials = 5;             // min, max, sum, sum of squares, non-finite count
static_assert(kMaxBlocks <= kThreads, "the finishing block holds one block's partials per thread");

__host__ __device__ int blocks_for(std::int64_t n) {
  const std::int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<int>(blocks < kMaxBlocks ? blocks : kMaxBlocks);
}

// The first limit greater than v (upper_bound), in shared memory.
__device__ int bucket_of(const double* limits, int buckets, double v) {
  int lo = 0, hi = buckets - 1;  // the last limit (DBL_MAX) is greater than every finite v
  while (lo < hi) {
    const int mid = (lo + hi) / 2;
    if (limits[mid] > v)
      hi = mid;
    else
      lo = mid + 1;
  }
  return lo;
}

// Block-wide reduction of one double per thread, fixed tree order; thread 0 gets the result.
template <class Op>
__device__ double block_reduce(double v, double* shared, Op op) {
  shared[threadIdx.x] = v;
  __syncthreads();
  for (int width = kThreads / 2; width > 0; width /= 2) {
    if (threadIdx.x < width)
      shared[threadIdx.x] = op(shared[threadIdx.x], shared[threadIdx.x + width]);
    __syncthreads();
  }
  const double result = shared[0];
  __syncthreads();
  return result;
}

// The float widened to double exactly, denormals included: the kernels build with fast math,
// whose flush-to-zero would turn a float denormal into 0 in a plain conversion (or comparison),
// while the host histogram keeps it.
__device__ double widen(float f) {
  const unsigned bits = __float_as_uint(f);
  if ((bits & 0x7f800000u) != 0) return double(f);                 // normal, infinite or NaN: exact
  const double magnitude = double(bits & 0x007fffffu) * 0x1p-149;  // zero or denormal
  return (bits >> 31) ? -magnitude : magnitude;
}

// max(v, 0) as ReLU gives it: NaN stays NaN, and -0.0 and every negative number become 0.
__device__ double relu(double v) { return v < 0.0 ? 0.0 : v; }

struct Min {
  __device__ double operator()(double a, double b) const { return fmin(a, b); }
};
struct Max {
  __device__ double operator()(double a, double b) const { return fmax(a, b); }
};
struct Sum {
  __device__ double operator()(double a, double b) const { return a + b; }
};

// Pass 1: each block reduces its grid-stride share into scratch[block * kPartials + field] and
// adds its bucket counts into the slot (integer-valued doubles: exact in any order).
__global__ void __launch_bounds__(kThreads)
    tensor_stats_kernel(StatsBatch batch, const double* __restrict__ limits, int buckets,
                        double* __restrict__ slots, double* __restrict__ scratch) {
  // blockIdx.y picks the tensor; blocks beyond the ones its size needs have nothing to do.
  const StatsInput in = batch.inputs[blockIdx.y];
  if (int(blockIdx.x) >= blocks_for(in.n)) return;
  const float* __restrict__ x = in.x;
  const std::int64_t n = in.n;
  const StatsOf f = in.f;
  double* slot = slots + std::size_t(blockIdx.y) * (kStatsHeader + buckets);
  scratch += std::size_t(blockIdx.y) * kMaxBlocks * kPartials;
  __shared__ double shared_limits[kMaxSharedBuckets];
  __shared__ unsigned counts[kMaxSharedBuckets];
  __shared__ double reduce[kThreads];
  for (int b = threadIdx.x; b < buckets; b += kThreads) {
    shared_limits[b] = limits[b];
    counts[b] = 0;
  }
  __syncthreads();
  double lo = DBL_MAX, hi = -DBL_MAX, sum = 0.0, squares = 0.0, non_finite = 0.0;
  const std::int64_t stride = std::int64_t(blocks_for(n)) * kThreads;
  for (std::int64_t i = blockIdx.x * std::int64_t(kThreads) + threadIdx.x; i < n; i += stride) {
    double v = widen(x[i]);
    if (f == StatsOf::kRelu) v = relu(v);
    if (!isfinite(v)) {
      non_finite += 1.0;
      continue;
    }
    lo = fmin(lo, v);
    hi = fmax(hi, v);
    sum += v;
    squares += v * v;
    atomicAdd(&counts[bucket_of(shared_limits, buckets, v)], 1u);
  }
  lo = block_reduce(lo, reduce, Min{});
  hi = block_reduce(hi, reduce, Max{});
  sum = block_reduce(sum, reduce, Sum{});
  squares = block_reduce(squares, reduce, Sum{});
  non_finite = block_reduce(non_finite, reduce, Sum{});
  if (threadIdx.x == 0) {
    double* part = scratch + std::size_t(blockIdx.x) * kPartials;
    part[0] = lo;
    part[1] = hi;
    part[2] = sum;
    part[3] = squares;
    part[4] = non_finite;
  }
  __syncthreads();  // every thread's counts are in
  for (int b = threadIdx.x; b < buckets; b += kThreads)
    if (counts[b]) atomicAdd(&slot[kStatsHeader + b], double(counts[b]));
}

// Pass 2: one block, thread t holding block t's partials, reduced in the fixed tree order.
__global__ void __launch_bounds__(kThreads)
    tensor_stats_finish_kernel(StatsBatch batch, const double* __restrict__ scratch, int buckets,
                               double* __restrict__ slots) {
  __shared__ double reduce[kThreads];
  // blockIdx.x picks the tensor.
  const int blocks = blocks_for(batch.inputs[blockIdx.x].n);
  scratch += std::size_t(blockIdx.x) * kMaxBlocks * kPartials;
  double* slot = slots + std::size_t(blockIdx.x) * (kStatsHeader + buckets);
  const bool mine = int(threadIdx.x) < blocks;
  const double* part = scratch + std::size_t(threadIdx.x) * kPartials;
  const double lo = block_reduce(mine ? part[0] : DBL_MAX, reduce, Min{});
  const double hi = block_reduce(mine ? part[1] : -DBL_MAX, reduce, Max{});
  const double sum = block_reduce(mine ? part[2] : 0.0, reduce, Sum{});
  const double squares = block_reduce(mine ? part[3] : 0.0, reduce, Sum{});
  const double non_finite = block_reduce(mine ? part[4] : 0.0, reduce, Sum{});
  if (threadIdx.x == 0) {
    slot[kStatsMin] = lo;
    slot[kStatsMax] = hi;
    slot[kStatsSum] = sum;
    slot[kStatsSumSquares] = squares;
    slot[kStatsNonFinite] = non_finite;
  }
}

// (partials may be pre itself: each thread reads its element before writing it.)
__global__ void finish_summary_hidden_kernel(const float* partials, int splits,
                                             const float* __restrict__ bias, float* pre,
                                             float* __restrict__ hidden, std::int64_t count, int n,
                                             float keep_prob, std::uint64_t seed,
                                             const std::int64_t* step) {
  const std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x;
  if (i >= count) return;
  float v = bias ? bias[i % n] : 0.0f;
  for (int s = 0; s < splits; ++s) v += partials[s * count + i];
  pre[i] = v;
  v = fmaxf(v, 0.0f);
  if (keep_prob < 1.0f) {
    const auto draw = static_cast<std::uint64_t>(*step);
    v = dropout_keep_scaled(v, dropout_uniform(seed, draw, static_cast<std::uint32_t>(i)),
                            keep_prob);
  }
  hidden[i] = v;
}

constexpr int kLogitsThreads = 128;

__global__ void __launch_bounds__(kLogitsThreads)
    summary_logits_kernel(const float* __restrict__ hidden, int units, const float* __restrict__ w2,
                          const float* __restrict__ b2, float* __restrict__ logits) {
  __shared__ float partial[kLogitsThreads / 32][kClasses];
  const float* h = hidden + std::size_t(blockIdx.x) * units;
  float z[kClasses] = {};
  for (int i = threadIdx.x; i < units; i += kLogitsThreads) {
    const float v = h[i];
#pragma unroll
    for (int j = 0; j < kClasses; ++j) z[j] = fmaf(v, w2[std::size_t(i) * kClasses + j], z[j]);
  }
#pragma unroll
  for (int j = 0; j < kClasses; ++j)
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2)
      z[j] += __shfl_xor_sync(0xffffffffu, z[j], offset);
  if (threadIdx.x % 32 == 0)
#pragma unroll
    for (int j = 0; j < kClasses; ++j) partial[threadIdx.x / 32][j] = z[j];
  __syncthreads();
  if (threadIdx.x < kClasses) {
    float sum = b2[threadIdx.x];
    for (int w = 0; w < kLogitsThreads / 32; ++w) sum += partial[w][threadIdx.x];
    logits[std::size_t(blockIdx.x) * kClasses + threadIdx.x] = sum;
  }
}

}  // namespace

void summary_logits(const float* hidden, int rows, int units, const float* w2, const float* b2,
                    float* logits, cudaStream_t stream) {
  summary_logits_kernel<<<rows, kLogitsThreads, 0, stream>>>(hidden, units, w2, b2, logits);
  MNIST_LAUNCH_CHECK("summary_logits_kernel");
}

void finish_summary_hidden(const float* partials, int splits, const float* bias, float* pre,
                           float* hidden, int rows, int n, float keep_prob, std::uint64_t seed,
                           const std::int64_t* step, cudaStream_t stream) {
  const std::int64_t count = std::int64_t(rows) * n;
  const auto blocks = static_cast<unsigned>((count + kThreads - 1) / kThreads);
  finish_summary_hidden_kernel<<<blocks, kThreads, 0, stream>>>(partials, splits, bias, pre, hidden,
                                                                count, n, keep_prob, seed, step);
  MNIST_LAUNCH_CHECK("finish_summary_hidden_kernel");
}

std::size_t tensor_stats_scratch_doubles() {
  return std::size_t(kMaxStatsInputs) * kMaxBlocks * kPartials;
}

void tensor_stats(const StatsBatch& batch, const double* limits, int buckets, double* slots,
                  double* scratch, cudaStream_t stream) {
  if (batch.count < 1 || batch.count > kMaxStatsInputs || buckets < 1 ||
      buckets > kMaxSharedBuckets) {
    throw std::invalid_argument("tensor_stats: " + std::to_string(batch.count) + " tensors (1.." +
                                std::to_string(kMaxStatsInputs) + "), " + std::to_string(buckets) +
                                " buckets (1.." + std::to_string(kMaxSharedBuckets) + ")");
  }
  int blocks = 1;
  for (int t = 0; t < batch.count; ++t) {
    if (batch.inputs[t].n < 1 || !batch.inputs[t].x)
      throw std::invalid_argument("tensor_stats: tensor " + std::to_string(t) + " is empty");
    blocks = std::max(blocks, blocks_for(batch.inputs[t].n));
  }
  // The counts of every slot start at 0 (the headers are written by the finishing kernel).
  const std::size_t slot_doubles = stats_slot_doubles(buckets);
  MNIST_CUDA_CHECK(cudaMemsetAsync(slots, 0, sizeof(double) * slot_doubles * batch.count, stream));
  tensor_stats_kernel<<<dim3(blocks, batch.count), kThreads, 0, stream>>>(batch, limits, buckets,
                                                                          slots, scratch);
  MNIST_LAUNCH_CHECK("tensor_stats_kernel");
  tensor_stats_finish_kernel<<<batch.count, kThreads, 0, stream>>>(batch, scratch, buckets, slots);
  MNIST_LAUNCH_CHECK("tensor_stats_finish_kernel");
}

void tensor_stats(const float* x, std::int64_t n, StatsOf f, const double* limits, int buckets,
                  double* slot, double* scratch, cudaStream_t stream) {
  StatsBatch batch;
  batch.inputs[0] = StatsInput{x, n, f};
  batch.count = 1;
  tensor_stats(batch, limits, buckets, slot, scratch, stream);
}

}  // namespace mnist::kernels
