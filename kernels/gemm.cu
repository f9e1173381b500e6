#include <cuda_bf16.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <type_traits>

#include "adam_rule.cuh"
#include "common/philox.h"
#include "common/sample_stream.h"
#include "gemm.h"
#include "launch.cuh"
#include "vec4.cuh"

namespace mnist::kernels {
namespace {

constexpr int kMaxWeightGradSplits = 16;
constexpr int kMaxNarrowSplits = 64;  // n <= 16: slices are cheap, each block is one warp

// ---- Operand loaders. An A loader reads op(A) rows i.., reduction index p.. as four elements:
// along p (kAlongRows = false: A is stored row by row, e.g. images) or along i (kAlongRows = true:
// A is stored transposed, e.g. X^T in the weight gradient). Row-wise loaders first map each row of
// the block's tile to a key once (row_key, kept in shared memory: for gathered images the image
// index, so the stream arithmetic runs once per row). Bounds: i < m, p < k (the block's slice).
// ----

struct DenseA {  // A[i, p] = a[i * lda + p]
  const float* a;
  int lda;
  static constexpr bool kAlongRows = false;
  __device__ int row_key(int i) const { return i; }
  __device__ void load(int key, int i, int p, int m, int k, Vec4& out) const {
    if (i < m)
      load4(a + std::size_t(key) * lda + p, k - p, out);
    else
      zero4(out);
  }
};

__device__ __forceinline__ int image_of(const ByteRows& x, int row) {
  if (x.indices) return x.indices[row];
  if (!x.orders) return row;
  return x
      .orders[order_slot(stream_position(*x.step, x.batch, x.row_offset + row, x.count), x.count)];
}

struct BytesA {  // A[i, p] = pixel p of batch row i, / 255
  ByteRows x;
  static constexpr bool kAlongRows = false;
  __device__ int row_key(int i) const { return image_of(x, i); }
  __device__ void load(int image, int i, int p, int m, int k, Vec4& out) const {
    if (i < m)
      load4(x.images + std::size_t(image) * kImagePixels + p, k - p, out);
    else
      zero4(out);
  }
};

// Writes the four elements of a transposed operand's run: `cols` stored values (row i.. of the
// transposed matrix), then the row of ones at i == cols, then zeros.
template <class Src>
__device__ __forceinline__ void load_with_ones_row(const Src* src, int i, int cols, Vec4& out) {
  if (i > cols) return zero4(out);
  load4(src, cols - i, out);
#pragma unroll
  for (int q = 0; q < 4; ++q)
    if (i + q == cols) out[q] = 1.0f;
}

struct BytesTransposedWithOnes {  // A[i, p] = pixel i of batch row p / 255; row 784 is all ones
  ByteRows x;                     // x.indices must be set (the batch the forward gathered)
  static constexpr bool kAlongRows = true;
  __device__ int col_key(int p, int k) const { return p < k ? x.indices[p] : 0; }
  __device__ void load(int image, int i, int p, int, int k, Vec4& out) const {
    if (p >= k) return zero4(out);
    load_with_ones_row(x.images + std::size_t(image) * kImagePixels + i, i, kImagePixels, out);
  }
};

struct DenseTransposedWithOnes {  // A[i, p] = h[p, i] for i < cols; row cols is all ones
  const float* h;
  int cols;
  static constexpr bool kAlongRows = true;
  __device__ int col_key(int p, int) const { return p; }
  __device__ void load(int, int i, int p, int, int k, Vec4& out) const {
    if (p >= k) return zero4(out);
    load_with_ones_row(h + std::size_t(p) * cols + i, i, cols, out);
  }
};

struct DenseB {  // B[p, j..j+3] = b[p * ldb + j..]
  const float* b;
  int ldb;
  __device__ void load(int p, int j, int n, int k, Vec4& out) const {
    if (p < k)
      load4(b + std::size_t(p) * ldb + j, n - j, out);
    else
      zero4(out);
  }
};

// ---- Epilogues: receive each finished run of four columns (j.. of row i, `valid` of them inside
// the matrix) once. ----

// Writes the gathered batch's image and label per row, and the step it was drawn at.
struct RecordBatch {
  ByteRows rows{};
  GatherRecord record{};
  __device__ void row(int i) const {
    if (!record.batch_images && !record.batch_labels && !record.batch_step) return;
    const int image = image_of(rows, i);
    if (record.batch_images) record.batch_images[i] = image;
    if (record.batch_labels) record.batch_labels[i] = record.labels[image];
    if (record.batch_step && i == 0) *record.batch_step = *rows.step;
  }
};

struct StoreBiasActivation {
  float* y;
  const float* bias;
  ReluDropout act;
  RecordBatch record{};
  std::int64_t step = 0;  // read once per block from act.step
  __device__ void load_state() {
    if (act.enabled && act.keep_prob < 1.0f) step = *act.step;
  }
  __device__ void operator()(int i, int j, int n, Vec4& v, int valid) const {
    const bool drop = act.enabled && act.keep_prob < 1.0f;
    const auto first = static_cast<std::uint32_t>(std::size_t(act.row_offset + i) * n + j);
    Vec4 u = {1.0f, 1.0f, 1.0f, 1.0f};  // dropout draws; a whole aligned group costs one Philox
    if (drop && valid >= 4 && first % 4 == 0) {
      dropout_uniform4(act.seed, static_cast<std::uint64_t>(step), first / 4, u);
    } else if (drop) {
#pragma unroll
      for (int q = 0; q < 4; ++q)
        if (q < valid)
          u[q] = dropout_uniform(act.seed, static_cast<std::uint64_t>(step), first + q);
    }
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      if (q >= valid) break;
      v[q] += bias ? bias[j + q] : 0.0f;
      if (act.enabled) {
        v[q] = fmaxf(v[q], 0.0f);
        if (drop) v[q] = dropout_keep_scaled(v[q], u[q], act.keep_prob);
      }
    }
    store4(y + std::size_t(i) * n + j, v, valid);
    if (j == 0) record.row(i);
  }
};

struct ApplyAdam {
  AdamUpdate u;
  AdamRule rule{};
  __device__ void load_state() { rule = AdamRule::at(u.lr, u.beta1, u.beta2, u.eps, *u.step); }
  __device__ void operator()(int i, int j, int n, Vec4& g, int valid) const {
    const std::size_t idx = std::size_t(i) * n + j;
    Vec4 p, m, v;
    load4(u.params + idx, valid, p);
    load4(u.m + idx, valid, m);
    load4(u.v + idx, valid, v);
#pragma unroll
    for (int q = 0; q < 4; ++q) rule.apply(p[q], m[q], v[q], g[q]);
    store4(u.params + idx, p, valid);
    store4(u.m + idx, m, valid);
    store4(u.v + idx, v, valid);
  }
};

// Split-K: slice blockIdx.z stores its partial sum.
struct StorePartial {
  float* partials;  // splits x m x n
  std::size_t slice;
  RecordBatch record{};
  __device__ void load_state() {}
  __device__ void operator()(int i, int j, int n, Vec4& v, int valid) const {
    store4(partials + blockIdx.z * slice + std::size_t(i) * n + j, v, valid);
    if (j == 0 && blockIdx.z == 0) record.row(i);
  }
};

// The gradient itself, scaled (data-parallel training: all-reduced before Adam).
struct StoreScaled {
  float* out;
  float scale;
  __device__ void load_state() {}
  __device__ void operator()(int i, int j, int n, Vec4& v, int valid) const {
#pragma unroll
    for (int q = 0; q < 4; ++q) v[q] *= scale;
    store4(out + std::size_t(i) * n + j, v, valid);
  }
};

// ---- The tiled kernel. A block computes a BM x BN tile of C over its slice of the reduction
// (blockIdx.z; one slice unless split), BK deep at a time through double-buffered shared memory:
// the next slice's global loads are in flight in registers while the current one is multiplied,
// and one barrier per slice suffices. The multiplication itself is a math policy (below): fp32 on
// the CUDA cores, or TF32/BF16 on the tensor cores. Out-of-range elements load as zero; the
// epilogue sees only in-range ones. ----
template <int BM, int BN, int BK, int TM, int TN>
struct TileShape {
  static constexpr int kBM = BM, kBN = BN, kBK = BK;
  static constexpr int kThreadsX = BN / TN, kThreadsY = BM / TM, kThreads = kThreadsX * kThreadsY;
  static constexpr int kRowStride = BM / (TM / 4), kColStride = BN / (TN / 4);
  static constexpr int kAVecs = BM * BK / (4 * kThreads), kBVecs = BN * BK / (4 * kThreads);
  static_assert(TM % 4 == 0 && TN % 4 == 0, "register tiles are made of 4 x 4 blocks");
  static_assert(kAVecs * 4 * kThreads == BM * BK && kBVecs * 4 * kThreads == BN * BK,
                "tile loads must divide evenly");
};

// ---- Math policies: a thread's accumulators, the product of one staged BK-deep slice (op(A) as
// a[p][row], B as b[p][col]) added to them, and the finished values handed to the epilogue. ----

// fp32 on the CUDA cores. Each thread holds a TM x TN register tile made of 4 x 4 blocks spread
// BM / (TM / 4) rows and BN / (TN / 4) columns apart, so it reads its operands as 16-byte
// shared-memory vectors without bank conflicts.
template <class T>
struct FmaMath {
  static constexpr int kPadA = 4, kPadB = 0;  // A's +4 spreads its rows over the banks
  static constexpr int TM = T::kBM / T::kThreadsY, TN = T::kBN / T::kThreadsX;
  float acc[TM][TN] = {};

  __device__ void slice(const float (*a)[T::kBM + kPadA], const float (*b)[T::kBN + kPadB],
                        int tid) {
    const int tx = tid % T::kThreadsX, ty = tid / T::kThreadsX;
#pragma unroll
    for (int p = 0; p < T::kBK; ++p) {
      float ar[TM], br[TN];
#pragma unroll
      for (int g = 0; g < TM / 4; ++g) {
        const float4 t = *reinterpret_cast<const float4*>(&a[p][g * T::kRowStride + ty * 4]);
        ar[4 * g] = t.x, ar[4 * g + 1] = t.y, ar[4 * g + 2] = t.z, ar[4 * g + 3] = t.w;
      }
#pragma unroll
      for (int g = 0; g < TN / 4; ++g) {
        const float4 t = *reinterpret_cast<const float4*>(&b[p][g * T::kColStride + tx * 4]);
        br[4 * g] = t.x, br[4 * g + 1] = t.y, br[4 * g + 2] = t.z, br[4 * g + 3] = t.w;
      }
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(ar[i], br[j], acc[i][j]);
    }
  }

  template <class Epilogue>
  __device__ void finish(Epilogue& epilogue, int m0, int n0, int m, int n, int tid) {
    const int tx = tid % T::kThreadsX, ty = tid / T::kThreadsX;
#pragma unroll
    for (int i = 0; i < TM; ++i) {
      const int gi = m0 + (i / 4) * T::kRowStride + ty * 4 + i % 4;
      if (gi >= m) continue;
#pragma unroll
      for (int g = 0; g < TN / 4; ++g) {
        const int gj = n0 + g * T::kColStride + tx * 4;
        if (gj >= n) continue;
        Vec4 v = {acc[i][4 * g], acc[i][4 * g + 1], acc[i][4 * g + 2], acc[i][4 * g + 3]};
        epilogue(gi, gj, n, v, n - gj);
      }
    }
  }
};

// The tensor cores (compute capability 8.0 and newer): warp-wide mma.sync m16n8k8 with fp32
// accumulators, the operands rounded to TF32 (cvt.rna) or BF16 (round to nearest even) as each
// fragment is read from the fp32 tiles in shared memory. The block's warps tile it kWarpsM x
// kWarpsN, each warp a WM x WN sub-tile of 16 x 8 products. Fragment layouts (PTX ISA, "Matrix
// fragments for mma.m16n8k8"; g = lane / 4, t = lane % 4):
//   tf32  A: (g, t) (g + 8, t) (g, t + 4) (g + 8, t + 4)       B: (t, g) (t + 4, g)
//   bf16  A: (g, 2t..2t+1) (g + 8, 2t..2t+1), pairs packed     B: (2t..2t+1, g), packed
//   both  C: (g, 2t) (g, 2t + 1) (g + 8, 2t) (g + 8, 2t + 1)
__device__ __forceinline__ std::uint32_t to_tf32(float x) {
  std::uint32_t r = 0;
#if __CUDA_ARCH__ >= 800
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
#else
  r = __float_as_uint(x);
#endif
  return r;
}

// Two floats as BF16, `lo` in the low half (the fragment's lower index).
__device__ __forceinline__ std::uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const std::uint32_t*>(&v);
}

template <Precision P>
__device__ __forceinline__ void mma_m16n8k8(float (&d)[4], const std::uint32_t* a,
                                            const std::uint32_t* b) {
#if __CUDA_ARCH__ >= 800
  if constexpr (P == Precision::kTf32) {
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(b[0]));
  }
#else
  __trap();  // the host never plans tensor-core products below compute capability 8.0
#endif
}

template <class T, Precision P>
struct MmaMath {
  // Rows padded so a fragment's 32 reads hit 32 banks: 8 floats for TF32 (rows t..), 4 for BF16
  // (rows 2t..), which also keeps the stash's stores as spread as fp32's.
  static constexpr int kPadA = P == Precision::kBf16 ? 4 : 8, kPadB = kPadA;
  static constexpr int kWarps = T::kThreads / 32;
  static constexpr int kWarpsM = (T::kBM >= 64 && kWarps >= 2) ? 2 : 1;
  static constexpr int kWarpsN = kWarps / kWarpsM;
  static constexpr int WM = T::kBM / kWarpsM, WN = T::kBN / kWarpsN;
  static constexpr int MT = WM / 16, NT = WN / 8;  // 16 x 8 products per warp
  static_assert(T::kThreads % 32 == 0 && kWarpsM * kWarpsN == kWarps, "whole warps tile the block");
  static_assert(WM % 16 == 0 && WN % 8 == 0 && T::kBK % 8 == 0, "the tile holds whole products");
  float acc[MT][NT][4] = {};

  __device__ void slice(const float (*a)[T::kBM + kPadA], const float (*b)[T::kBN + kPadB],
                        int tid) {
    const int lane = tid % 32, warp = tid / 32, g = lane / 4, t = lane % 4;
    const int wm0 = (warp / kWarpsN) * WM, wn0 = (warp % kWarpsN) * WN;
#pragma unroll
    for (int kk = 0; kk < T::kBK; kk += 8) {
      constexpr int kARegs = P == Precision::kTf32 ? 4 : 2, kBRegs = P == Precision::kTf32 ? 2 : 1;
      std::uint32_t af[MT][kARegs], bf[NT][kBRegs];
#pragma unroll
      for (int i = 0; i < MT; ++i) {
        const int r = wm0 + i * 16 + g;
        if constexpr (P == Precision::kTf32) {
          af[i][0] = to_tf32(a[kk + t][r]);
          af[i][1] = to_tf32(a[kk + t][r + 8]);
          af[i][2] = to_tf32(a[kk + t + 4][r]);
          af[i][3] = to_tf32(a[kk + t + 4][r + 8]);
        } else {
          af[i][0] = pack_bf16(a[kk + 2 * t][r], a[kk + 2 * t + 1][r]);
          af[i][1] = pack_bf16(a[kk + 2 * t][r + 8], a[kk + 2 * t + 1][r + 8]);
        }
      }
#pragma unroll
      for (int j = 0; j < NT; ++j) {
        const int c = wn0 + j * 8 + g;
        if constexpr (P == Precision::kTf32) {
          bf[j][0] = to_tf32(b[kk + t][c]);
          bf[j][1] = to_tf32(b[kk + t + 4][c]);
        } else {
          bf[j][0] = pack_bf16(b[kk + 2 * t][c], b[kk + 2 * t + 1][c]);
        }
      }
#pragma unroll
      for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int j = 0; j < NT; ++j) mma_m16n8k8<P>(acc[i][j], af[i], bf[j]);
    }
  }

  // Lanes t and t^1 hold columns 4(t/2)..+1 and +2..+3 of rows g and g + 8: one exchange gives
  // the even lane row g's four columns and the odd lane row g + 8's, runs of four like FmaMath's
  // (so the epilogues' vector loads and stores and their one-Philox-per-four dropout apply).
  // Every lane takes part in both shuffles before any is skipped.
  template <class Epilogue>
  __device__ void finish(Epilogue& epilogue, int m0, int n0, int m, int n, int tid) {
    const int lane = tid % 32, warp = tid / 32, g = lane / 4, t = lane % 4;
    const int wm0 = (warp / kWarpsN) * WM, wn0 = (warp % kWarpsN) * WN;
    const bool odd = t & 1;
#pragma unroll
    for (int i = 0; i < MT; ++i) {
#pragma unroll
      for (int j = 0; j < NT; ++j) {
        const float s0 = __shfl_xor_sync(0xffffffffu, odd ? acc[i][j][0] : acc[i][j][2], 1);
        const float s1 = __shfl_xor_sync(0xffffffffu, odd ? acc[i][j][1] : acc[i][j][3], 1);
        const int row = m0 + wm0 + i * 16 + g + (odd ? 8 : 0);
        const int col = n0 + wn0 + j * 8 + 4 * (t / 2);
        if (row >= m || col >= n) continue;
        Vec4 v = {odd ? s0 : acc[i][j][0], odd ? s1 : acc[i][j][1], odd ? acc[i][j][2] : s0,
                  odd ? acc[i][j][3] : s1};
        epilogue(row, col, n, v, n - col);
      }
    }
  }
};
template <class T>
using Tf32Math = MmaMath<T, Precision::kTf32>;
template <class T>
using Bf16Math = MmaMath<T, Precision::kBf16>;

// Registers are capped at 128 per thread (16 warps per SM can be resident).
template <int BM, int BN, int BK, int TM, int TN, template <class> class MathOf, class LoadA,
          class LoadB, class Epilogue>
__global__ void __launch_bounds__((BM / TM) * (BN / TN), 512 / ((BM / TM) * (BN / TN)))
    gemm_kernel(LoadA load_a, LoadB load_b, Epilogue epilogue, int m, int n, int k_total,
                int k_chunk) {
  using T = TileShape<BM, BN, BK, TM, TN>;
  using Math = MathOf<T>;
  __shared__ __align__(16) float as[2][BK][BM + Math::kPadA];  // op(A), reduction-major
  __shared__ __align__(16) float bs[2][BK][BN + Math::kPadB];
  __shared__ int row_keys[LoadA::kAlongRows ? 1 : BM];
  const int tid = threadIdx.x;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  const int k_begin = blockIdx.z * k_chunk, k = min(k_total, k_begin + k_chunk);
  await_previous_kernel();
  // Where this thread's l-th vector of the A tile lives: row r and reduction index p of its first
  // element (transposed A: four rows at one p; row-major A: four p along one row).
  auto a_coords = [&](int l, int& r, int& p) {
    const int v = tid + l * T::kThreads;
    if constexpr (LoadA::kAlongRows) {
      r = (v % (BM / 4)) * 4, p = v / (BM / 4);
    } else {
      r = v / (BK / 4), p = (v % (BK / 4)) * 4;
    }
  };
  Vec4 a_next[T::kAVecs], b_next[T::kBVecs];
  int a_keys[T::kAVecs];  // transposed A: the keys of the slice fetched next
  if constexpr (LoadA::kAlongRows) {
#pragma unroll
    for (int l = 0; l < T::kAVecs; ++l) {
      int r, p;
      a_coords(l, r, p);
      a_keys[l] = load_a.col_key(k_begin + p, k);
    }
  }
  auto fetch_a = [&](int k0) {
#pragma unroll
    for (int l = 0; l < T::kAVecs; ++l) {
      int r, p;
      a_coords(l, r, p);
      if constexpr (LoadA::kAlongRows) {
        load_a.load(a_keys[l], m0 + r, k0 + p, m, k, a_next[l]);
        a_keys[l] = load_a.col_key(k0 + BK + p, k);
      } else {
        load_a.load(row_keys[r], m0 + r, k0 + p, m, k, a_next[l]);
      }
    }
  };
  auto fetch_b = [&](int k0) {
#pragma unroll
    for (int l = 0; l < T::kBVecs; ++l) {
      const int v = tid + l * T::kThreads;
      const int p = v / (BN / 4), c = (v % (BN / 4)) * 4;
      load_b.load(k0 + p, n0 + c, n, k, b_next[l]);
    }
  };
  auto stash = [&](int buf) {
#pragma unroll
    for (int l = 0; l < T::kAVecs; ++l) {
      int r, p;
      a_coords(l, r, p);
      if constexpr (LoadA::kAlongRows) {
        *reinterpret_cast<float4*>(&as[buf][p][r]) =
            make_float4(a_next[l][0], a_next[l][1], a_next[l][2], a_next[l][3]);
      } else {
#pragma unroll
        for (int q = 0; q < 4; ++q) as[buf][p + q][r] = a_next[l][q];
      }
    }
#pragma unroll
    for (int l = 0; l < T::kBVecs; ++l) {
      const int v = tid + l * T::kThreads;
      const int p = v / (BN / 4), c = (v % (BN / 4)) * 4;
      *reinterpret_cast<float4*>(&bs[buf][p][c]) =
          make_float4(b_next[l][0], b_next[l][1], b_next[l][2], b_next[l][3]);
    }
  };

  Math math;
  int buf = 0;
  // B first: its loads need no row keys, so they are in flight while the keys resolve.
  if (k_begin < k) fetch_b(k_begin);
  if constexpr (!LoadA::kAlongRows) {
    for (int r = tid; r < BM; r += T::kThreads)
      row_keys[r] = m0 + r < m ? load_a.row_key(m0 + r) : 0;
    __syncthreads();
  }
  if (k_begin < k) {
    fetch_a(k_begin);
    stash(0);
  }
  __syncthreads();
  for (int k0 = k_begin; k0 < k; k0 += BK) {
    const bool more = k0 + BK < k;
    if (more) {
      fetch_a(k0 + BK);
      fetch_b(k0 + BK);
    }
    math.slice(as[buf], bs[buf], tid);
    if (more) stash(buf ^ 1);
    __syncthreads();
    buf ^= 1;
  }

  epilogue.load_state();
  math.finish(epilogue, m0, n0, m, n, tid);
}

// ---- Tile shapes and the split of the reduction, chosen per problem on the host. ----

using Big = TileShape<128, 128, 8, 8, 8>;    // wide outputs: 64 FMAs per 4 shared-memory reads
using Long = TileShape<64, 128, 8, 8, 8>;    // long split reductions: the same register tile,
                                             // finer grain over 785 rows (13 tiles, not 7)
using Mid = TileShape<64, 64, 32, 4, 4>;     // outputs of a few hundred rows
using Small = TileShape<32, 64, 32, 4, 4>;   // when even Mid tiles leave SMs idle
using Narrow = TileShape<32, 16, 32, 4, 4>;  // n <= 16 (the output layer): 16 blocks for 501 rows

enum class Shape { kBig, kLong, kMid, kSmall, kNarrow };

constexpr int kTargetWarpsPerSm = 16;  // what the 128-register cap allows resident

struct Plan {
  Shape shape;
  int splits, k_chunk;  // blocks along z, each reducing over k_chunk (a multiple of BK)
  Precision precision = Precision::kFp32;
};

// How far a product may be split: at most max_splits slices of at least min_depth.
struct SplitPolicy {
  int max_splits, min_depth;
  int narrow_max_splits;  // for the Narrow tile (n <= 16)
};
constexpr SplitPolicy kNoSplit{1, 1, 1};
// The forward's slices are added by the output layer, which takes at most kMaxForwardSplits of
// them, whatever the tile (a narrow hidden layer too).
constexpr SplitPolicy kForwardSplit{kMaxForwardSplits, 64, kMaxForwardSplits};
constexpr SplitPolicy kWeightGradSplit{kMaxWeightGradSplits, 128, kMaxNarrowSplits};

// Split the reduction until the grid holds about kTargetWarpsPerSm warps per SM.
template <class T>
Plan make_plan(Shape shape, int m, int n, int k, SplitPolicy policy) {
  const long long tiles = (long long)((m + T::kBM - 1) / T::kBM) * ((n + T::kBN - 1) / T::kBN);
  const long long target_blocks =
      (long long)device_facts().sms * kTargetWarpsPerSm / (T::kThreads / 32);
  const int wanted = static_cast<int>(
      std::clamp<long long>(target_blocks / tiles, 1, std::max(1, policy.max_splits)));
  const int depth = (k + wanted - 1) / wanted;
  const int whole = (k + T::kBK - 1) / T::kBK * T::kBK;
  int chunk = (depth + T::kBK - 1) / T::kBK * T::kBK;
  chunk = std::max(chunk, std::min(policy.min_depth, whole));
  return {shape, (k + chunk - 1) / chunk, chunk};
}

// Narrow outputs use the narrow tile (with many shallow slices: the whole product is small, and
// its partial sums too); wide outputs (a full wave of big tiles) the big one; long reductions that
// may be split the long one; the rest the middle one, or the small one where the middle one
// leaves SMs idle.
Plan plan_shape(int m, int n, int k, SplitPolicy policy) {
  if (n <= 16) {
    const SplitPolicy narrow{policy.narrow_max_splits, Narrow::kBK, policy.narrow_max_splits};
    return make_plan<Narrow>(Shape::kNarrow, m, n, k, narrow);
  }
  const long long big_tiles =
      (long long)((m + Big::kBM - 1) / Big::kBM) * ((n + Big::kBN - 1) / Big::kBN);
  if (big_tiles >= 120) return make_plan<Big>(Shape::kBig, m, n, k, policy);
  if (k >= 1024 && policy.max_splits > 1) return make_plan<Long>(Shape::kLong, m, n, k, policy);
  const Plan mid = make_plan<Mid>(Shape::kMid, m, n, k, policy);
  const long long mid_blocks =
      (long long)((m + Mid::kBM - 1) / Mid::kBM) * ((n + Mid::kBN - 1) / Mid::kBN) * mid.splits;
  if (mid_blocks >= device_facts().sms) return mid;
  return make_plan<Small>(Shape::kSmall, m, n, k, policy);
}

// The shape's plan, at the given precision (tensor cores from compute capability 8.0 on).
Plan plan_for(int m, int n, int k, SplitPolicy policy, Precision precision = Precision::kFp32) {
  Plan plan = plan_shape(m, n, k, policy);
  plan.precision = precision;
  if (precision != Precision::kFp32 && device_facts().major < 8)
    throw std::invalid_argument("gemm: tensor-core precisions need compute capability 8.0");
  return plan;
}

template <class T, template <class> class MathOf, class LoadA, class LoadB, class Epilogue>
void launch_math(LoadA a, LoadB b, Epilogue e, int m, int n, int k, const Plan& plan,
                 cudaStream_t stream) {
  constexpr int TM = T::kBM / T::kThreadsY, TN = T::kBN / T::kThreadsX;
  const dim3 grid((n + T::kBN - 1) / T::kBN, (m + T::kBM - 1) / T::kBM, plan.splits);
  launch(MNIST_HERE, "gemm_kernel",
         gemm_kernel<T::kBM, T::kBN, T::kBK, TM, TN, MathOf, LoadA, LoadB, Epilogue>, grid,
         T::kThreads, 0, stream, a, b, e, m, n, k, plan.k_chunk);
}

// The narrow tile (the output layer's 10 columns) stays on the CUDA cores at every precision: its
// product is tiny, and ten columns would leave most of a tensor-core product idle.
template <class T, class LoadA, class LoadB, class Epilogue>
void launch_shape(LoadA a, LoadB b, Epilogue e, int m, int n, int k, const Plan& plan,
                  cudaStream_t stream) {
  if constexpr (!std::is_same_v<T, TileShape<32, 16, 32, 4, 4>>) {
    if (plan.precision == Precision::kTf32)
      return launch_math<T, Tf32Math>(a, b, e, m, n, k, plan, stream);
    if (plan.precision == Precision::kBf16)
      return launch_math<T, Bf16Math>(a, b, e, m, n, k, plan, stream);
  }
  launch_math<T, FmaMath>(a, b, e, m, n, k, plan, stream);
}

template <class LoadA, class LoadB, class Epilogue>
void run_gemm(LoadA a, LoadB b, Epilogue e, int m, int n, int k, const Plan& plan,
              cudaStream_t stream) {
  if (m <= 0 || n <= 0 || k <= 0) throw std::invalid_argument("gemm: empty shape");
  switch (plan.shape) {
    case Shape::kBig:
      return launch_shape<Big>(a, b, e, m, n, k, plan, stream);
    case Shape::kLong:
      return launch_shape<Long>(a, b, e, m, n, k, plan, stream);
    case Shape::kMid:
      return launch_shape<Mid>(a, b, e, m, n, k, plan, stream);
    case Shape::kSmall:
      return launch_shape<Small>(a, b, e, m, n, k, plan, stream);
    case Shape::kNarrow:
      return launch_shape<Narrow>(a, b, e, m, n, k, plan, stream);
  }
}

__global__ void adam_from_partials_kernel(const float* __restrict__ partials, int splits,
                                          std::size_t n, AdamUpdate u) {
  await_previous_kernel();
  const AdamRule rule = AdamRule::at(u.lr, u.beta1, u.beta2, u.eps, *u.step);
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
       i += std::size_t(gridDim.x) * blockDim.x) {
    float g = 0.0f;
    for (int z = 0; z < splits; ++z) g += partials[z * n + i];
    float p = u.params[i], m = u.m[i], v = u.v[i];
    rule.apply(p, m, v, g);
    u.params[i] = p;
    u.m[i] = m;
    u.v[i] = v;
  }
}

// out[i] = scale * (sum of the `splits` partials of element i, in slice order).
__global__ void sum_partials_kernel(const float* __restrict__ partials, int splits, std::size_t n,
                                    float scale, float* __restrict__ out) {
  await_previous_kernel();
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
       i += std::size_t(gridDim.x) * blockDim.x) {
    float g = 0.0f;
    for (int z = 0; z < splits; ++z) g += partials[z * n + i];
    out[i] = g * scale;
  }
}

unsigned elementwise_blocks(std::size_t n) {
  return static_cast<unsigned>(std::min<std::size_t>((n + 255) / 256, 2048));
}

// scale * [A^T; 1^T] * dZ into grad: straight from the epilogue, or split over the batch into
// partial gradients added in a fixed order.
template <class LoadA>
void weight_grad_only(LoadA a, int m, const float* dz, int batch, int n, float scale, float* grad,
                      float* split_scratch, cudaStream_t stream, Precision precision) {
  const Plan plan = plan_for(m, n, batch, split_scratch ? kWeightGradSplit : kNoSplit, precision);
  if (plan.splits == 1)
    return run_gemm(a, DenseB{dz, n}, StoreScaled{grad, scale}, m, n, batch, plan, stream);
  const std::size_t slice = std::size_t(m) * n;
  run_gemm(a, DenseB{dz, n}, StorePartial{split_scratch, slice}, m, n, batch, plan, stream);
  launch(MNIST_HERE, "sum_partials_kernel", sum_partials_kernel, elementwise_blocks(slice), 256, 0,
         stream, split_scratch, plan.splits, slice, scale, grad);
}

// [A^T; 1^T] * dZ then Adam: straight in the epilogue, or split over the batch into partial
// gradients that adam_from_partials adds in a fixed order.
template <class LoadA>
void weight_grad_then_adam(LoadA a, int m, const float* dz, int batch, int n,
                           const AdamUpdate& adam, cudaStream_t stream, Precision precision) {
  const Plan plan =
      plan_for(m, n, batch, adam.split_scratch ? kWeightGradSplit : kNoSplit, precision);
  if (plan.splits == 1)
    return run_gemm(a, DenseB{dz, n}, ApplyAdam{adam}, m, n, batch, plan, stream);
  const std::size_t slice = std::size_t(m) * n;
  run_gemm(a, DenseB{dz, n}, StorePartial{adam.split_scratch, slice}, m, n, batch, plan, stream);
  adam_from_partials(adam.split_scratch, plan.splits, slice, adam, stream);
}

}  // namespace

int weight_grad_splits(int in, int n, int batch) {
  return plan_for(in + 1, n, batch, kWeightGradSplit).splits;
}

int forward_splits(int m, int n, int k) {
  const int splits = plan_for(m, n, k, kForwardSplit).splits;
  if (splits > kMaxForwardSplits)  // the output layer would drop the slices beyond
    throw std::logic_error("forward_splits: more slices than the output layer adds");
  return splits;
}

void linear_forward_bytes_split(const ByteRows& x, const float* w, float* partials, int m, int n,
                                const GatherRecord& record, cudaStream_t stream,
                                Precision precision) {
  const Plan plan = plan_for(m, n, kImagePixels, kForwardSplit, precision);
  const StorePartial store{partials, std::size_t(m) * n, RecordBatch{x, record}};
  run_gemm(BytesA{x}, DenseB{w, n}, store, m, n, kImagePixels, plan, stream);
}

void linear_forward_split(const float* x, const float* w, float* partials, int m, int k, int n,
                          cudaStream_t stream, Precision precision) {
  const Plan plan = plan_for(m, n, k, kForwardSplit, precision);
  run_gemm(DenseA{x, k}, DenseB{w, n}, StorePartial{partials, std::size_t(m) * n}, m, n, k, plan,
           stream);
}

void linear_forward_bytes(const ByteRows& x, const float* w, const float* bias, float* y, int m,
                          int n, const ReluDropout& epilogue, const GatherRecord& record,
                          cudaStream_t stream, Precision precision) {
  const StoreBiasActivation store{y, bias, epilogue, RecordBatch{x, record}};
  run_gemm(BytesA{x}, DenseB{w, n}, store, m, n, kImagePixels,
           plan_for(m, n, kImagePixels, kNoSplit, precision), stream);
}

int forward_wave_rows(int m, int n) {
  const Plan plan = plan_shape(m, n, kImagePixels, kNoSplit);
  if (plan.shape != Shape::kBig) return m;
  const int tiles_n = (n + Big::kBN - 1) / Big::kBN;
  const int slots = device_facts().sms * (kTargetWarpsPerSm / (Big::kThreads / 32));
  const int rows_per_wave = std::max(1, slots / tiles_n) * Big::kBM;
  const int whole = m / rows_per_wave * rows_per_wave;
  // A last wave at least half full stays with the large tiles.
  return whole == 0 || (m - whole) * 2 >= rows_per_wave ? m : whole;
}

void linear_forward(const float* x, const float* w, const float* bias, float* y, int m, int k,
                    int n, const ReluDropout& epilogue, cudaStream_t stream, Precision precision) {
  run_gemm(DenseA{x, k}, DenseB{w, n}, StoreBiasActivation{y, bias, epilogue}, m, n, k,
           plan_for(m, n, k, kNoSplit, precision), stream);
}

void weight_grad_adam_bytes(const ByteRows& x, const float* dz, int batch, int n,
                            const AdamUpdate& adam, cudaStream_t stream, Precision precision) {
  weight_grad_then_adam(BytesTransposedWithOnes{x}, kImagePixels + 1, dz, batch, n, adam, stream,
                        precision);
}

void weight_grad_adam(const float* h, int k, const float* dz, int batch, int n,
                      const AdamUpdate& adam, cudaStream_t stream, Precision precision) {
  weight_grad_then_adam(DenseTransposedWithOnes{h, k}, k + 1, dz, batch, n, adam, stream,
                        precision);
}

void weight_grad_bytes(const ByteRows& x, const float* dz, int batch, int n, float scale,
                       float* grad, float* split_scratch, cudaStream_t stream,
                       Precision precision) {
  weight_grad_only(BytesTransposedWithOnes{x}, kImagePixels + 1, dz, batch, n, scale, grad,
                   split_scratch, stream, precision);
}

void weight_grad(const float* h, int k, const float* dz, int batch, int n, float scale, float* grad,
                 float* split_scratch, cudaStream_t stream, Precision precision) {
  weight_grad_only(DenseTransposedWithOnes{h, k}, k + 1, dz, batch, n, scale, grad, split_scratch,
                   stream, precision);
}

void adam_from_partials(const float* partials, int splits, std::size_t n, const AdamUpdate& adam,
                        cudaStream_t stream) {
  launch(MNIST_HERE, "adam_from_partials_kernel", adam_from_partials_kernel, elementwise_blocks(n),
         256, 0, stream, partials, splits, n, adam);
}

}  // namespace mnist::kernels
