#include <cooperative_groups.h>

#include <algorithm>
#include <stdexcept>

#include "adam_rule.cuh"
#include "common/philox.h"
#include "common/sample_stream.h"
#include "fused_step.h"
#include "launch.cuh"

namespace mnist::kernels {
namespace {

namespace cg = cooperative_groups;

constexpr int kThreads = 512;
constexpr int kMaxSlices = 8;                // the forward's 784-deep sum, in up to 8 slices
constexpr int kWords = kImagePixels / 4;     // an image as 196 words of four pixels
constexpr int kRowStrideWords = kWords + 1;  // odd stride: rows in distinct banks
static_assert(kThreads / kFusedMaxBatch >= 4, "the forward has a thread per row and slice");

// The forward's slices for a batch: as many as its threads hold (a thread per row and slice).
__host__ __device__ constexpr int slices_for(int batch) {
  return kThreads / batch < kMaxSlices ? kThreads / batch : kMaxSlices;
}

// Blocks that own `units` hidden units each.
int blocks_for(int hidden, int units) { return (hidden + units - 1) / units; }

// Shared memory, in floats (the bytes last): what one block holds for a batch of `batch` rows.
struct SharedLayout {
  int w1, m, v, part, h, dh, dl, w2, b1, images, pixels, total_bytes;
  __host__ __device__ SharedLayout(int batch, int units) {
    w1 = 0;                           // [784][units] the block's W1 columns
    m = w1 + kImagePixels * units;    // [784][units] their Adam moments
    v = m + kImagePixels * units;     // [784][units]
    part = v + kImagePixels * units;  // [slices][batch][units] forward slices
    h = part + kThreads * units;      // [batch][units] after ReLU and dropout
    dh = h + batch * units;           // [batch][units]
    dl = dh + batch * units;          // [batch][10] dlogits
    w2 = dl + batch * kClasses;       // [units][10] the block's W2 rows
    b1 = w2 + units * kClasses;       // [units]
    images = b1 + units;              // [batch] int32: the batch's images
    pixels = images + batch;          // [batch][kRowStrideWords] words of pixels
    total_bytes = (pixels + batch * kRowStrideWords) * 4;
  }
};

// Byte b of `word` as a float, exactly: its bits under 2^23's exponent are 2^23 + byte (one byte
// permute), less 2^23 (one add) -- cheaper than a shift, a mask and an integer conversion. The
// sums over pixels run on these byte values; the 1/255 of kPixelScale is applied to each sum.
__device__ __forceinline__ float pixel(std::uint32_t word, int b) {
  return __uint_as_float(__byte_perm(word, 0x4b000000u, 0x7650u + b)) - 8388608.0f;
}

// Stores a run of U (4 or 8) consecutive floats of a row of W1 or its Adam moments: 16-byte
// stores when `vec` (rows and offsets aligned) and the run is whole, else element by element;
// elements at or past `valid` (units beyond the layer) are never written.
template <int U>
__device__ __forceinline__ void store_run(float* p, bool vec, int valid, const float (&in)[U]) {
  if (vec && valid >= U) {
#pragma unroll
    for (int q = 0; q < U / 4; ++q)
      reinterpret_cast<float4*>(p)[q] =
          make_float4(in[4 * q], in[4 * q + 1], in[4 * q + 2], in[4 * q + 3]);
    return;
  }
#pragma unroll
  for (int u = 0; u < U; ++u)
    if (u < valid) p[u] = in[u];
}

// Phase timestamps of each block (thread 0), for a profiling build only (MNIST_FUSED_STEP_PROFILE;
// bench/fused_phases.cu reads them): no code in the product's build.
#ifdef MNIST_FUSED_STEP_PROFILE
__device__ unsigned long long fused_phase_ns[1024][13];
#define MNIST_FUSED_MARK(n)                                 \
  do {                                                      \
    if (threadIdx.x == 0) {                                 \
      unsigned long long t;                                 \
      asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t)); \
      fused_phase_ns[blockIdx.x][n] = t;                    \
    }                                                       \
  } while (0)
#else
#define MNIST_FUSED_MARK(n) \
  do {                      \
  } while (0)
#endif

// Copies a run of U floats into shared memory: asynchronously (cp.async, compute capability 8.0 or
// newer; nothing held in registers, the wait comes later) when whole and aligned, else element by
// element, with zeros at or past `valid`.
template <int U>
__device__ __forceinline__ void copy_run(float* dst, const float* src, bool vec, int valid) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  if (vec && valid >= U) {
    const auto to = static_cast<unsigned>(__cvta_generic_to_shared(dst));
#pragma unroll
    for (int q = 0; q < U / 4; ++q)
      asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(to + 16 * q), "l"(src + 4 * q)
                   : "memory");
    return;
  }
#endif
#pragma unroll
  for (int u = 0; u < U; ++u) dst[u] = u < valid ? src[u] : 0.0f;
}

// Copies one word into shared memory, asynchronously where cp.async exists.
__device__ __forceinline__ void copy_word(std::uint32_t* dst, const std::uint32_t* src) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;" ::"r"(
                   static_cast<unsigned>(__cvta_generic_to_shared(dst))),
               "l"(src)
               : "memory");
#else
  *dst = __ldg(src);
#endif
}

// Closes the group of copies issued since the last call; waits until at most `kPending` of the
// closed groups are still in flight (no-ops where cp.async does not exist).
__device__ __forceinline__ void close_copies() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;" ::: "memory");
#endif
}
template <int kPending>
__device__ __forceinline__ void await_copies() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;" ::"n"(kPending) : "memory");
#endif
}

// A run of U floats of shared memory (16-byte aligned) in U / 4 vector loads.
template <int U>
__device__ __forceinline__ void shared_run(const float* p, float (&out)[U]) {
#pragma unroll
  for (int q = 0; q < U / 4; ++q) {
    const float4 t = reinterpret_cast<const float4*>(p)[q];
    out[4 * q] = t.x, out[4 * q + 1] = t.y, out[4 * q + 2] = t.z, out[4 * q + 3] = t.w;
  }
}

// Adam on one parameter: `param` where it lives, `p` its value before the step (as staged), `i`
// its index in the flat array (for the moments).
__device__ __forceinline__ void adam_one(const FusedStep& a, const AdamRule& rule, float* param,
                                         std::size_t i, float p, float g) {
  float m = a.m[i], v = a.v[i];
  rule.apply(p, m, v, g);
  *param = p, a.m[i] = m, a.v[i] = v;
}

__device__ __forceinline__ bool aligned16(const void* p) {
  return (reinterpret_cast<std::uintptr_t>(p) & 15u) == 0;
}

template <int U>
__global__ void __launch_bounds__(kThreads, 1) fused_step_kernel(FusedStep a) {
  extern __shared__ float4 shared_raw[];
  float* shared = reinterpret_cast<float*>(shared_raw);
  const int batch = a.batch.batch, hidden = a.hidden, tid = threadIdx.x;
  const SharedLayout at(batch, U);
  float* w1s = shared + at.w1;
  float* ms = shared + at.m;
  float* vs = shared + at.v;
  float* part = shared + at.part;
  float* hs = shared + at.h;
  float* dhs = shared + at.dh;
  float* dls = shared + at.dl;
  float* w2s = shared + at.w2;
  float* b1s = shared + at.b1;
  int* images = reinterpret_cast<int*>(shared + at.images);
  std::uint32_t* pixels = reinterpret_cast<std::uint32_t*>(shared + at.pixels);
  const int first_unit = blockIdx.x * U;
  const int blocks = gridDim.x;
  float* partial_logits = a.scratch;                                    // [batch][blocks][10]
  float* dlogits = a.scratch + std::size_t(batch) * kClasses * blocks;  // [batch][10]

  // ---- 1. The batch and this block's parameters into shared memory. Every load of a phase is
  // issued before any is waited for (a loop of load-then-store would wait once per element). ----
  MNIST_FUSED_MARK(0);
  const std::int64_t step = *a.step;
  const int valid = min(U, hidden - first_unit);  // owned units inside the layer
  const bool vec = hidden % 4 == 0 && aligned16(a.w1) && aligned16(a.m + a.w1_offset) &&
                   aligned16(a.v + a.w1_offset);
  // Three groups of asynchronous copies, in the order they are needed: the owned W1 columns and
  // (once the batch's images are known) its pixels for the forward, then W1's Adam moments.
  for (int k = tid; k < kImagePixels; k += kThreads)
    copy_run<U>(w1s + k * U, a.w1 + std::size_t(k) * hidden + first_unit, vec, valid);
  close_copies();
  if (tid < batch) {
    const int r = tid;
    const int image =
        a.batch.orders[order_slot(stream_position(step, batch, r, a.batch.count), a.batch.count)];
    images[r] = image;
    if (blockIdx.x == 0) {
      a.batch_images[r] = image;
      a.batch_labels[r] = a.labels[image];
    }
  }
  if (blockIdx.x == 0 && tid == 0) *a.batch_step = step;
  for (int e = tid; e < U * kClasses; e += kThreads) {
    const int unit = first_unit + e / kClasses;
    w2s[e] = unit < hidden ? a.w2[std::size_t(unit) * kClasses + e % kClasses] : 0.0f;
  }
  if (tid < U) b1s[tid] = first_unit + tid < hidden ? a.b1[first_unit + tid] : 0.0f;
  __syncthreads();  // images[]
  MNIST_FUSED_MARK(1);
  // The batch's pixels, a word at a time (rows sit at an odd stride, so not 16-byte aligned).
  const auto* image_words = reinterpret_cast<const std::uint32_t*>(a.batch.images);
  for (int e = tid; e < batch * kWords; e += kThreads) {
    const int r = e / kWords, w = e % kWords;
    copy_word(pixels + r * kRowStrideWords + w, image_words + std::size_t(images[r]) * kWords + w);
  }
  close_copies();
  for (int k = tid; k < kImagePixels; k += kThreads) {
    const std::size_t at_row = a.w1_offset + std::size_t(k) * hidden + first_unit;
    copy_run<U>(ms + k * U, a.m + at_row, vec, valid);
    copy_run<U>(vs + k * U, a.v + at_row, vec, valid);
  }
  close_copies();
  await_copies<1>();  // W1 and the pixels (the moments may still be in flight)
  __syncthreads();
  MNIST_FUSED_MARK(2);

  // ---- Forward: slice q of row r's sum for every owned unit. ----
  const int slices = slices_for(batch);
  {
    const int r = tid % batch, q = tid / batch;
    if (q < slices) {
      float acc[U] = {};
      const int first = q * kWords / slices, end = (q + 1) * kWords / slices;
      const std::uint32_t* row = pixels + r * kRowStrideWords;
#pragma unroll 4
      for (int w = first; w < end; ++w) {
        const std::uint32_t word = row[w];
#pragma unroll
        for (int b = 0; b < 4; ++b) {
          const float x = pixel(word, b);
          float wk[U];
          shared_run(w1s + (w * 4 + b) * U, wk);
#pragma unroll
          for (int u = 0; u < U; ++u) acc[u] = fmaf(x, wk[u], acc[u]);
        }
      }
#pragma unroll
      for (int u = 0; u < U; ++u) part[(q * batch + r) * U + u] = acc[u];
    }
  }
  __syncthreads();
  MNIST_FUSED_MARK(3);
  const float inv_keep = 1.0f / a.keep_prob;
  // Four units of a row per thread: their dropout draws are one Philox block when they form an
  // aligned group of the layer (the tiled forward's grouping), else drawn one by one.
  for (int e = tid; e < batch * (U / 4); e += kThreads) {
    const int r = e / (U / 4), u0 = e % (U / 4) * 4;
    const auto first = static_cast<std::uint32_t>(std::size_t(r) * hidden + first_unit + u0);
    float u[4] = {1.0f, 1.0f, 1.0f, 1.0f};
    if (a.keep_prob < 1.0f && hidden % 4 == 0) {
      dropout_uniform4(a.seed, static_cast<std::uint64_t>(step), first / 4, u);
    } else if (a.keep_prob < 1.0f) {
#pragma unroll
      for (int q = 0; q < 4; ++q)
        u[q] = dropout_uniform(a.seed, static_cast<std::uint64_t>(step), first + q);
    }
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      float sum = 0.0f;
      for (int s = 0; s < slices; ++s) sum += part[(s * batch + r) * U + u0 + q];
      float v = fmaxf(fmaf(sum, kPixelScale, b1s[u0 + q]), 0.0f);
      if (a.keep_prob < 1.0f) v = dropout_keep_scaled(v, u[q], a.keep_prob);
      hs[r * U + u0 + q] = first_unit + u0 + q < hidden ? v : 0.0f;
    }
  }
  __syncthreads();
  MNIST_FUSED_MARK(4);
  // This block's share of every logit: a run of ten floats per row (the row's runs of all blocks
  // lie together, so that step 2 reads a row's in one coalesced sweep).
  for (int e = tid; e < batch * kClasses; e += kThreads) {
    const int r = e / kClasses, c = e % kClasses;
    float z = 0.0f;
#pragma unroll
    for (int u = 0; u < U; ++u) z = fmaf(hs[r * U + u], w2s[u * kClasses + c], z);
    partial_logits[(std::size_t(r) * blocks + blockIdx.x) * kClasses + c] = z;
  }

  cg::grid_group grid = cg::this_grid();
  MNIST_FUSED_MARK(5);
  grid.sync();
  MNIST_FUSED_MARK(6);

  // ---- 2. Loss and dlogits, one row per block: the row's shares staged (one sweep), then warp
  // c sums class c over the blocks (lane l takes blocks l, l + 32, ..., then a shuffle tree: a
  // fixed order). ----
  if (blockIdx.x == 0 && tid == 0) *a.step = step + 1;  // every block read it before the barrier
  // The forward slices are no longer needed: their room holds the row's shares, then its logits.
  float* shares = part;                 // [blocks][10]
  float* z = part + blocks * kClasses;  // [10]
  const int warp = tid / 32, lane = tid % 32;
  for (int r = blockIdx.x; r < batch; r += blocks) {
    const float* row_shares = partial_logits + std::size_t(r) * blocks * kClasses;
    for (int e = tid; e < blocks * kClasses; e += kThreads) shares[e] = row_shares[e];
    __syncthreads();
    if (warp < kClasses) {
      float s = 0.0f;
      for (int b = lane; b < blocks; b += 32) s += shares[b * kClasses + warp];
#pragma unroll
      for (int offset = 16; offset > 0; offset /= 2) s += __shfl_xor_sync(0xffffffffu, s, offset);
      if (lane == 0) z[warp] = a.b2[warp] + s;
    }
    __syncthreads();
    if (warp == 0) {  // lane j < 10: class j
      const int label = a.labels[images[r]];
      const float zj = lane < kClasses ? z[lane] : -INFINITY;
      float zmax = zj;
#pragma unroll
      for (int offset = 16; offset > 0; offset /= 2)
        zmax = fmaxf(zmax, __shfl_xor_sync(0xffffffffu, zmax, offset));
      const int best = __ffs(__ballot_sync(0xffffffffu, zj == zmax)) - 1;  // the first maximum
      float sum = lane < kClasses ? __expf(zj - zmax) : 0.0f;
#pragma unroll
      for (int offset = 16; offset > 0; offset /= 2)
        sum += __shfl_xor_sync(0xffffffffu, sum, offset);
      const float log_sum = __logf(sum);
      const float z_label = __shfl_sync(0xffffffffu, zj, label);
      if (lane < kClasses) {
        const float p = __expf(zj - zmax - log_sum);
        dlogits[r * kClasses + lane] = (p - (lane == label ? 1.0f : 0.0f)) / batch;
      }
      if (lane == 0) {
        a.row_loss[r] = log_sum - (z_label - zmax);
        a.row_correct[r] = best == label;
      }
    }
    __syncthreads();
  }
  MNIST_FUSED_MARK(7);
  grid.sync();
  MNIST_FUSED_MARK(8);

  // ---- 3. Gradients of this block's parameters, and Adam on them (t = step + 1). ----
  const AdamRule rule = AdamRule::at(a.lr, a.beta1, a.beta2, a.eps, step + 1);
  for (int e = tid; e < batch * kClasses; e += kThreads) dls[e] = dlogits[e];
  await_copies<0>();  // the Adam moments' group
  __syncthreads();
  MNIST_FUSED_MARK(9);
  // dh through the old W2 (held in w2s) and the ReLU/dropout mask.
  for (int e = tid; e < batch * U; e += kThreads) {
    const int r = e / U, u = e % U;
    float s = 0.0f;
#pragma unroll
    for (int c = 0; c < kClasses; ++c) s = fmaf(dls[r * kClasses + c], w2s[u * kClasses + c], s);
    dhs[e] = hs[e] > 0.0f ? s * inv_keep : 0.0f;
  }
  __syncthreads();
  MNIST_FUSED_MARK(10);
  // dW1[k, owned units] = sum over rows of x[r, k] * dh[r, :], then Adam: a thread takes two
  // adjacent pixels (one byte pair of a word). The threads past the 392 pairs meanwhile take the
  // small gradients, each with Adam: dW2 of the owned rows, db2 (block 0) and db1.
  constexpr int kPairs = kImagePixels / 2, kFree = kThreads - kPairs;
  static_assert(kFree >= 8 * kClasses + kClasses + 8, "room for dW2, db2 and db1 beside dW1");
  if (tid >= kPairs) {
    const int f = tid - kPairs;
    if (f < U * kClasses) {
      const int u = f / kClasses, c = f % kClasses, unit = first_unit + u;
      float g = 0.0f;
      for (int r = 0; r < batch; ++r) g = fmaf(hs[r * U + u], dls[r * kClasses + c], g);
      if (unit < hidden) {
        const std::size_t i = std::size_t(unit) * kClasses + c;
        adam_one(a, rule, a.w2 + i, a.w2_offset + i, w2s[f], g);
      }
    } else if (f < U * kClasses + kClasses) {
      const int c = f - U * kClasses;
      if (blockIdx.x == 0) {
        float g = 0.0f;
        for (int r = 0; r < batch; ++r) g += dls[r * kClasses + c];
        adam_one(a, rule, a.b2 + c, a.b2_offset + c, a.b2[c], g);
      }
    } else if (f < U * kClasses + kClasses + U) {
      const int u = f - U * kClasses - kClasses, unit = first_unit + u;
      if (unit < hidden) {
        float g = 0.0f;
        for (int r = 0; r < batch; ++r) g += dhs[r * U + u];
        adam_one(a, rule, a.b1 + unit, a.b1_offset + unit, b1s[u], g);
      }
    }
  }
  for (int pair = tid; pair < kPairs; pair += kThreads) {
    const int k0 = 2 * pair;
    float g[2][U] = {};
    const int word = k0 / 4, byte = k0 % 4;
#pragma unroll 4
    for (int r = 0; r < batch; ++r) {
      const std::uint32_t w = pixels[r * kRowStrideWords + word];
      const float x0 = pixel(w, byte), x1 = pixel(w, byte + 1);
      float d[U];
      shared_run(dhs + r * U, d);
#pragma unroll
      for (int u = 0; u < U; ++u) {
        g[0][u] = fmaf(x0, d[u], g[0][u]);
        g[1][u] = fmaf(x1, d[u], g[1][u]);
      }
    }
    MNIST_FUSED_MARK(11);
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const int k = k0 + j;
      float p[U], m[U], v[U];
#pragma unroll
      for (int u = 0; u < U; ++u) {
        p[u] = w1s[k * U + u], m[u] = ms[k * U + u], v[u] = vs[k * U + u];
        rule.apply(p[u], m[u], v[u], g[j][u] * kPixelScale);
      }
      const std::size_t at_row = std::size_t(k) * hidden + first_unit;
      store_run(a.w1 + at_row, vec, valid, p);
      store_run(a.m + a.w1_offset + at_row, vec, valid, m);
      store_run(a.v + a.w1_offset + at_row, vec, valid, v);
    }
  }
  MNIST_FUSED_MARK(12);
}

using Kernel = void (*)(FusedStep);

Kernel kernel_for(int units) { return units == 8 ? fused_step_kernel<8> : fused_step_kernel<4>; }

}  // namespace

FusedPlan plan_fused_step(int batch, int hidden) {
  FusedPlan plan;
  if (batch < 1 || batch > kFusedMaxBatch) {
    plan.unsupported = "the fused step takes batches of 1 to 128 rows";
    return plan;
  }
  if (hidden < 1) {
    plan.unsupported = "the fused step is the mlp's (a hidden layer)";
    return plan;
  }
  int device = 0, cooperative = 0, optin = 0;
  MNIST_CUDA_CHECK(cudaGetDevice(&device));
  MNIST_CUDA_CHECK(cudaDeviceGetAttribute(&cooperative, cudaDevAttrCooperativeLaunch, device));
  MNIST_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  if (!cooperative) {
    plan.unsupported = "this GPU has no cooperative launch";
    return plan;
  }
  plan.unsupported = "this GPU's shared memory or SMs cannot hold a block per 8 hidden units";
  for (const int units : {4, 8}) {
    const int shared = SharedLayout(batch, units).total_bytes;
    if (shared > optin) continue;  // more than a block may have on this GPU
    const Kernel kernel = kernel_for(units);
    // The kernel may use up to what the GPU allows (a fixed limit, so that no later plan for a
    // smaller batch can lower it beneath a graph captured with a larger one).
    MNIST_CUDA_CHECK(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, optin));
    int per_sm = 0;
    MNIST_CUDA_CHECK(
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, shared));
    const int blocks = blocks_for(hidden, units);
    // Every block co-resident (the grid barriers), and a row's shares within the slices' room.
    if (blocks <= per_sm * device_facts().sms && (blocks + 1) * kClasses <= kThreads * units) {
      plan = {units, blocks, shared, nullptr};
      return plan;
    }
  }
  return plan;
}

std::size_t fused_step_scratch_floats(int batch, int hidden) {
  // Partial logits for the most blocks any plan launches (4 units each), then dlogits.
  return std::size_t(batch) * kClasses * (blocks_for(hidden, 4) + 1);
}

void fused_step(const FusedStep& step, const FusedPlan& plan, cudaStream_t stream) {
  if (plan.unsupported) throw std::invalid_argument(plan.unsupported);
  cudaLaunchAttribute attribute{};
  attribute.id = cudaLaunchAttributeCooperative;
  attribute.val.cooperative = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(plan.blocks);
  config.blockDim = dim3(kThreads);
  config.dynamicSmemBytes = static_cast<unsigned>(plan.shared_bytes);
  config.stream = stream;
  config.attrs = &attribute;
  config.numAttrs = 1;
  LaunchObserver* observer = launch_observer();
  if (observer) observer->before("fused_step_kernel", stream);
  cuda_check(cudaLaunchKernelEx(&config, kernel_for(plan.units), step), "fused_step_kernel",
             __FILE__, __LINE__);
  if (observer) observer->after("fused_step_kernel", stream);
}

}  // namespace mnist::kernels
