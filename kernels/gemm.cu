#include <stdexcept>

#include "cuda_check.h"
#include "gemm.h"
#include "philox.h"

namespace mnist::kernels {
namespace {

// ---- Operand loaders: element (i, p) of op(A) (row i, reduction index p) or (p, j) of B. ----
// An A loader first maps each row of the block's tile to a key once (row_key, kept in shared
// memory: for gathered images that is the image index, so the 64-bit stream arithmetic runs once
// per row, not once per element), then reads elements by (key, i, p). kRowsContiguous tells the
// tile loader which index to vary fastest across threads so a warp reads consecutive addresses.

struct DenseA {  // A[i, p] = a[i * lda + p]
  const float* a;
  int lda;
  static constexpr bool kRowsContiguous = false;
  __device__ int row_key(int i) const { return i; }
  __device__ float operator()(int key, int, int p) const { return a[std::size_t(key) * lda + p]; }
};

__device__ __forceinline__ int image_of(const ByteRows& x, int row) {
  if (x.indices) return x.indices[row];
  if (!x.orders) return row;
  const std::int64_t s = *x.step * x.batch + row;
  const std::int64_t epoch = s / x.count;
  return x.orders[(epoch % 2) * x.count + static_cast<int>(s % x.count)];
}

struct BytesA {  // A[i, p] = pixel p of batch row i, / 255
  ByteRows x;
  static constexpr bool kRowsContiguous = false;
  __device__ int row_key(int i) const { return image_of(x, i); }
  __device__ float operator()(int image, int, int p) const {
    return x.images[std::size_t(image) * kImagePixelsK + p] * (1.0f / 255.0f);
  }
};

struct BytesTransposedWithOnes {  // A[i, p] = pixel i of batch row p / 255; row 784 is all ones
  ByteRows x;                     // x.indices must be set (the batch the forward gathered)
  static constexpr bool kRowsContiguous = true;
  __device__ int row_key(int i) const { return i; }
  __device__ float operator()(int, int i, int p) const {
    if (i == kImagePixelsK) return 1.0f;
    return x.images[std::size_t(x.indices[p]) * kImagePixelsK + i] * (1.0f / 255.0f);
  }
};

struct DenseTransposedWithOnes {  // A[i, p] = h[p, i] for i < k; row k is all ones
  const float* h;
  int k;
  static constexpr bool kRowsContiguous = true;
  __device__ int row_key(int i) const { return i; }
  __device__ float operator()(int, int i, int p) const {
    return i == k ? 1.0f : h[std::size_t(p) * k + i];
  }
};

struct DenseB {  // B[p, j] = b[p * ldb + j]
  const float* b;
  int ldb;
  __device__ float operator()(int p, int j) const { return b[std::size_t(p) * ldb + j]; }
};

// ---- Epilogues: receive each finished element once. ----

struct StoreBiasActivation {
  float* y;
  const float* bias;
  ReluDropout act;
  std::int64_t step = 0;  // read once per block from act.step
  // Optional record of the gathered batch (written by the blocks holding column 0).
  ByteRows rows{};
  GatherRecord record{};
  __device__ void load_state() {
    if (act.enabled && act.keep_prob < 1.0f) step = *act.step;
  }
  __device__ void operator()(int i, int j, int n, float acc) const {
    float v = acc + (bias ? bias[j] : 0.0f);
    if (act.enabled) {
      v = fmaxf(v, 0.0f);
      if (act.keep_prob < 1.0f) {
        const auto index = static_cast<std::uint32_t>(std::size_t(i) * n + j);
        v = dropout_uniform(act.seed, static_cast<std::uint64_t>(step), index) < act.keep_prob
                ? v / act.keep_prob
                : 0.0f;
      }
    }
    y[std::size_t(i) * n + j] = v;
    if (j == 0 && (record.batch_images || record.batch_labels)) {
      const int image = image_of(rows, i);
      if (record.batch_images) record.batch_images[i] = image;
      if (record.batch_labels) record.batch_labels[i] = record.labels[image];
    }
  }
};

struct ApplyAdam {
  AdamUpdate u;
  float lr_t;
  __device__ void load_state() {
    const float t = static_cast<float>(*u.step);
    lr_t = u.lr * sqrtf(1.0f - powf(u.beta2, t)) / (1.0f - powf(u.beta1, t));
  }
  __device__ void operator()(int i, int j, int n, float g) const {
    const std::size_t idx = std::size_t(i) * n + j;
    if (u.grad) u.grad[idx] = g;
    const float m = u.beta1 * u.m[idx] + (1.0f - u.beta1) * g;
    const float v = u.beta2 * u.v[idx] + (1.0f - u.beta2) * g * g;
    u.m[idx] = m;
    u.v[idx] = v;
    u.params[idx] -= lr_t * m / (sqrtf(v) + u.eps);
  }
};

// Split-K: each z-slice stores its partial sum; adam_from_partials adds them in a fixed order.
struct StorePartial {
  float* partials;  // splits x m x n
  std::size_t slice;
  __device__ void load_state() {}
  __device__ void operator()(int i, int j, int n, float acc) const {
    partials[blockIdx.z * slice + std::size_t(i) * n + j] = acc;
  }
};

// ---- The tiled kernel: a BM x BN tile per block, BK-deep slices through shared memory, a TM x TN
// register tile per thread strided across the block tile so shared-memory reads are
// conflict-free. The next slice's global loads are issued into registers before the current slice
// is multiplied, so their latency hides behind the arithmetic. Out-of-range elements load as zero;
// the epilogue sees only in-range ones. ----
template <int BM, int BN, int BK, int TM, int TN, class LoadA, class LoadB, class Epilogue>
__global__ void __launch_bounds__((BM / TM) * (BN / TN))
    gemm_kernel(LoadA load_a, LoadB load_b, Epilogue epilogue, int m, int n, int k_total) {
  constexpr int kThreadsX = BN / TN, kThreadsY = BM / TM, kThreads = kThreadsX * kThreadsY;
  constexpr int kAPerThread = BM * BK / kThreads, kBPerThread = BN * BK / kThreads;
  static_assert(BM * BK % kThreads == 0 && BN * BK % kThreads == 0,
                "tile loads must divide evenly");
  __shared__ float as[BK][BM + 1];
  __shared__ float bs[BK][BN + 1];
  __shared__ int row_keys[BM];
  const int tid = threadIdx.x, tx = tid % kThreadsX, ty = tid / kThreadsX;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  // Split-K: block z reduces over [k_begin, k); the epilogue then sees a partial sum.
  const int k_chunk = (k_total + gridDim.z - 1) / gridDim.z;
  const int k_begin = blockIdx.z * k_chunk, k = min(k_total, k_begin + k_chunk);
  for (int r = tid; r < BM; r += kThreads) row_keys[r] = m0 + r < m ? load_a.row_key(m0 + r) : 0;
  __syncthreads();

  float a_next[kAPerThread], b_next[kBPerThread];
  auto fetch = [&](int k0) {
#pragma unroll
    for (int l = 0; l < kAPerThread; ++l) {
      const int idx = tid + l * kThreads;
      const int r = LoadA::kRowsContiguous ? idx % BM : idx / BK;
      const int p = LoadA::kRowsContiguous ? idx / BM : idx % BK;
      a_next[l] = (m0 + r < m && k0 + p < k) ? load_a(row_keys[r], m0 + r, k0 + p) : 0.0f;
    }
#pragma unroll
    for (int l = 0; l < kBPerThread; ++l) {
      const int idx = tid + l * kThreads;
      const int c = idx % BN, p = idx / BN;
      b_next[l] = (n0 + c < n && k0 + p < k) ? load_b(k0 + p, n0 + c) : 0.0f;
    }
  };

  float acc[TM][TN] = {};
  fetch(k_begin);
  for (int k0 = k_begin; k0 < k; k0 += BK) {
#pragma unroll
    for (int l = 0; l < kAPerThread; ++l) {
      const int idx = tid + l * kThreads;
      const int r = LoadA::kRowsContiguous ? idx % BM : idx / BK;
      const int p = LoadA::kRowsContiguous ? idx / BM : idx % BK;
      as[p][r] = a_next[l];
    }
#pragma unroll
    for (int l = 0; l < kBPerThread; ++l) {
      const int idx = tid + l * kThreads;
      bs[idx / BN][idx % BN] = b_next[l];
    }
    __syncthreads();
    if (k0 + BK < k) fetch(k0 + BK);
#pragma unroll
    for (int p = 0; p < BK; ++p) {
      float av[TM], bv[TN];
#pragma unroll
      for (int i = 0; i < TM; ++i) av[i] = as[p][ty + kThreadsY * i];
#pragma unroll
      for (int j = 0; j < TN; ++j) bv[j] = bs[p][tx + kThreadsX * j];
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
    }
    __syncthreads();
  }

  epilogue.load_state();
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int gi = m0 + ty + kThreadsY * i;
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const int gj = n0 + tx + kThreadsX * j;
      if (gi < m && gj < n) epilogue(gi, gj, n, acc[i][j]);
    }
  }
}

template <int BM, int BN, int BK, int TM, int TN, class LoadA, class LoadB, class Epilogue>
void launch(LoadA a, LoadB b, Epilogue e, int m, int n, int k, cudaStream_t stream,
            int splits = 1) {
  if (m <= 0 || n <= 0 || k <= 0) throw std::invalid_argument("gemm: empty shape");
  const dim3 grid((n + BN - 1) / BN, (m + BM - 1) / BM, splits);
  gemm_kernel<BM, BN, BK, TM, TN><<<grid, (BM / TM) * (BN / TN), 0, stream>>>(a, b, e, m, n, k);
  MNIST_LAUNCH_CHECK("gemm_kernel");
}

// Tile shape by problem size: small problems want many small tiles to reach all SMs; large ones
// want big register tiles for arithmetic intensity.
template <class LoadA, class LoadB, class Epilogue>
void launch_sized(LoadA a, LoadB b, Epilogue e, int m, int n, int k, cudaStream_t stream) {
  const long long tiles64 = (long long)((m + 63) / 64) * ((n + 63) / 64);
  if (n <= 16) {
    launch<32, 16, 16, 2, 1>(a, b, e, m, n, k, stream);
  } else if (tiles64 < 132) {
    launch<16, 32, 32, 1, 2>(a, b, e, m, n, k, stream);
  } else if (tiles64 < 1024) {
    launch<64, 64, 16, 4, 4>(a, b, e, m, n, k, stream);
  } else {
    launch<128, 128, 8, 8, 8>(a, b, e, m, n, k, stream);
  }
}

}  // namespace

void linear_forward_bytes(const ByteRows& x, const float* w, const float* bias, float* y, int m,
                          int n, const ReluDropout& epilogue, const GatherRecord& record,
                          cudaStream_t stream) {
  const StoreBiasActivation store{y, bias, epilogue, 0, x, record};
  launch_sized(BytesA{x}, DenseB{w, n}, store, m, n, kImagePixelsK, stream);
}

void linear_forward(const float* x, const float* w, const float* bias, float* y, int m, int k,
                    int n, const ReluDropout& epilogue, cudaStream_t stream) {
  launch_sized(DenseA{x, k}, DenseB{w, n}, StoreBiasActivation{y, bias, epilogue}, m, n, k, stream);
}

// Large batches: a 64 x 64 tile grid has too few blocks for the SMs, and each block would loop
// over the whole batch. Split the batch into slices whose partial gradients a second kernel adds
// (in a fixed order, so results stay reproducible) before Adam.
static int split_count(int batch, const AdamUpdate& adam) {
  if (!adam.split_scratch || batch < 1024) return 1;
  return std::min(kMaxWeightGradSplits, batch / 512);
}

void weight_grad_adam_bytes(const ByteRows& x, const float* dz, int batch, int n,
                            const AdamUpdate& adam, cudaStream_t stream) {
  const int m = kImagePixelsK + 1;
  const int splits = split_count(batch, adam);
  if (splits == 1) {
    // (784 + 1) x n with a reduction over a small batch: 32 x 32 tiles give 400 blocks for n = 500.
    launch<32, 32, 16, 2, 2>(BytesTransposedWithOnes{x}, DenseB{dz, n}, ApplyAdam{adam, 0.0f}, m, n,
                             batch, stream);
    return;
  }
  const std::size_t slice = std::size_t(m) * n;
  launch<64, 64, 16, 4, 4>(BytesTransposedWithOnes{x}, DenseB{dz, n},
                           StorePartial{adam.split_scratch, slice}, m, n, batch, stream, splits);
  adam_from_partials(adam.split_scratch, splits, slice, adam, stream);
}

void weight_grad_adam(const float* h, int k, const float* dz, int batch, int n,
                      const AdamUpdate& adam, cudaStream_t stream) {
  const int splits = split_count(batch, adam);
  if (splits == 1) {
    launch_sized(DenseTransposedWithOnes{h, k}, DenseB{dz, n}, ApplyAdam{adam, 0.0f}, k + 1, n,
                 batch, stream);
    return;
  }
  const std::size_t slice = std::size_t(k + 1) * n;
  if (n <= 16) {
    launch<32, 16, 16, 2, 1>(DenseTransposedWithOnes{h, k}, DenseB{dz, n},
                             StorePartial{adam.split_scratch, slice}, k + 1, n, batch, stream,
                             splits);
  } else {
    launch<64, 64, 16, 4, 4>(DenseTransposedWithOnes{h, k}, DenseB{dz, n},
                             StorePartial{adam.split_scratch, slice}, k + 1, n, batch, stream,
                             splits);
  }
  adam_from_partials(adam.split_scratch, splits, slice, adam, stream);
}

namespace {

__global__ void adam_from_partials_kernel(const float* __restrict__ partials, int splits,
                                          std::size_t n, AdamUpdate u) {
  const float t = static_cast<float>(*u.step);
  const float lr_t = u.lr * sqrtf(1.0f - powf(u.beta2, t)) / (1.0f - powf(u.beta1, t));
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
       i += std::size_t(gridDim.x) * blockDim.x) {
    float g = 0.0f;
    for (int z = 0; z < splits; ++z) g += partials[z * n + i];
    if (u.grad) u.grad[i] = g;
    const float m = u.beta1 * u.m[i] + (1.0f - u.beta1) * g;
    const float v = u.beta2 * u.v[i] + (1.0f - u.beta2) * g * g;
    u.m[i] = m;
    u.v[i] = v;
    u.params[i] -= lr_t * m / (sqrtf(v) + u.eps);
  }
}

}  // namespace

void adam_from_partials(const float* partials, int splits, std::size_t n, const AdamUpdate& adam,
                        cudaStream_t stream) {
  const auto blocks = static_cast<unsigned>(std::min<std::size_t>((n + 255) / 256, 2048));
  adam_from_partials_kernel<<<blocks, 256, 0, stream>>>(partials, splits, n, adam);
  MNIST_LAUNCH_CHECK("adam_from_partials_kernel");
}

}  // namespace mnist::kernels
