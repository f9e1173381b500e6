#include "cuda_check.h"
#include "gemm.h"
#include "philox.h"

namespace mnist::kernels {
namespace {

// 64x64 output tile per block, 16-deep K slices through shared memory; each of the 256 threads
// owns a 4x4 sub-tile strided by 16 so a warp's shared-memory reads hit distinct banks.
constexpr int kTileM = 64, kTileN = 64, kTileK = 16, kThreads = 256;

// A(i, p) is the (row i, reduction p) element of op(A); B(p, j) likewise.
template <bool kTransA, bool kTransB>
__global__ void __launch_bounds__(kThreads)
    gemm_kernel(const float* __restrict__ a, const float* __restrict__ b,
                const float* __restrict__ bias, float* __restrict__ c, int m, int n, int k, int lda,
                int ldb, ReluDropout epi) {
  __shared__ float as[kTileK][kTileM + 4];
  __shared__ float bs[kTileK][kTileN + 4];
  const int tid = threadIdx.x;
  const int tx = tid % 16, ty = tid / 16;
  const int m0 = blockIdx.y * kTileM, n0 = blockIdx.x * kTileN;
  float acc[4][4] = {};

  for (int k0 = 0; k0 < k; k0 += kTileK) {
#pragma unroll
    for (int l = 0; l < (kTileM * kTileK) / kThreads; ++l) {
      const int idx = tid + l * kThreads;
      // Map threads so consecutive threads read consecutive global addresses.
      const int r = kTransA ? idx % kTileM : idx / kTileK;
      const int p = kTransA ? idx / kTileM : idx % kTileK;
      const int gi = m0 + r, gp = k0 + p;
      float v = 0.0f;
      if (gi < m && gp < k)
        v = kTransA ? a[std::size_t(gp) * lda + gi] : a[std::size_t(gi) * lda + gp];
      as[p][r] = v;
    }
#pragma unroll
    for (int l = 0; l < (kTileN * kTileK) / kThreads; ++l) {
      const int idx = tid + l * kThreads;
      const int r = kTransB ? idx / kTileK : idx % kTileN;
      const int p = kTransB ? idx % kTileK : idx / kTileN;
      const int gj = n0 + r, gp = k0 + p;
      float v = 0.0f;
      if (gj < n && gp < k)
        v = kTransB ? b[std::size_t(gj) * ldb + gp] : b[std::size_t(gp) * ldb + gj];
      bs[p][r] = v;
    }
    __syncthreads();
#pragma unroll
    for (int p = 0; p < kTileK; ++p) {
      float av[4], bv[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) av[i] = as[p][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) bv[j] = bs[p][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
    }
    __syncthreads();
  }

  const std::int64_t step = epi.enabled && epi.step ? *epi.step : 0;
  const float inv_keep = 1.0f / epi.keep_prob;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int gi = m0 + ty + 16 * i;
    if (gi >= m) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int gj = n0 + tx + 16 * j;
      if (gj >= n) continue;
      float v = acc[i][j] + (bias ? bias[gj] : 0.0f);
      if (epi.enabled) {
        v = fmaxf(v, 0.0f);
        if (epi.keep_prob < 1.0f) {
          const auto index = static_cast<std::uint32_t>(std::size_t(gi) * n + gj);
          v = dropout_uniform(epi.seed, static_cast<std::uint64_t>(step), index) < epi.keep_prob
                  ? v * inv_keep
                  : 0.0f;
        }
      }
      c[std::size_t(gi) * n + gj] = v;
    }
  }
}

template <bool kTransA, bool kTransB>
void launch_gemm(const float* a, const float* b, const float* bias, float* c, int m, int n, int k,
                 int lda, int ldb, const ReluDropout& epi, cudaStream_t stream) {
  if (m <= 0 || n <= 0 || k <= 0) throw std::invalid_argument("gemm: empty shape");
  const dim3 grid((n + kTileN - 1) / kTileN, (m + kTileM - 1) / kTileM);
  gemm_kernel<kTransA, kTransB>
      <<<grid, kThreads, 0, stream>>>(a, b, bias, c, m, n, k, lda, ldb, epi);
  MNIST_LAUNCH_CHECK("gemm_kernel");
}

}  // namespace

void linear_forward(const float* x, const float* w, const float* bias, float* y, int m, int k,
                    int n, const ReluDropout& epilogue, cudaStream_t stream) {
  launch_gemm<false, false>(x, w, bias, y, m, n, k, k, n, epilogue, stream);
}

void matmul_at_b(const float* a, const float* b, float* c, int m, int k, int n,
                 cudaStream_t stream) {
  // C[k,n] = sum over the m rows: op(A) is A^T (k x m), stored m x k.
  launch_gemm<true, false>(a, b, nullptr, c, k, n, m, k, n, ReluDropout{}, stream);
}

void matmul_a_bt(const float* a, const float* b, float* c, int m, int n, int k,
                 cudaStream_t stream) {
  // C[m,k] = sum over n: op(B) is B^T (n x k), stored k x n.
  launch_gemm<false, true>(a, b, nullptr, c, m, k, n, n, n, ReluDropout{}, stream);
}

}  // namespace mnist::kernels
