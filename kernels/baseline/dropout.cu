#include "common/philox.h"
#include "cuda_error.h"
#include "dropout.h"

namespace mnist::kernels {
namespace {

__device__ __forceinline__ float load(const float* p) { return *p; }
__device__ __forceinline__ float load(const __nv_bfloat16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

template <typename T>
__global__ void dropout_forward_kernel(const T* __restrict__ a, T* __restrict__ h, std::size_t n,
                                       float keep_prob, std::uint64_t seed,
                                       const std::int64_t* step) {
  const std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const float u = keep_prob >= 1.0f ? 0.0f
                                    : dropout_uniform(seed, static_cast<std::uint64_t>(*step),
                                                      static_cast<std::uint32_t>(i));
  store(h + i, dropout_keep_scaled(load(a + i), u, keep_prob));
}

template <typename T>
__global__ void relu_dropout_backward_kernel(const float* __restrict__ dh, const T* __restrict__ h,
                                             T* __restrict__ dz, std::size_t n, float inv_keep) {
  const std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x;
  if (i < n) store(dz + i, load(h + i) > 0.0f ? dh[i] * inv_keep : 0.0f);
}

}  // namespace

template <typename T>
void dropout_forward(const T* a, T* h, std::size_t n, float keep_prob, std::uint64_t seed,
                     const std::int64_t* step, cudaStream_t stream) {
  dropout_forward_kernel<<<static_cast<unsigned>((n + 255) / 256), 256, 0, stream>>>(
      a, h, n, keep_prob, seed, step);
  MNIST_LAUNCH_CHECK("dropout_forward_kernel");
}

template <typename T>
void relu_dropout_backward(const float* dh, const T* h, T* dz, std::size_t n, float keep_prob,
                           cudaStream_t stream) {
  const auto blocks = static_cast<unsigned>((n + 255) / 256);
  relu_dropout_backward_kernel<<<blocks, 256, 0, stream>>>(dh, h, dz, n, 1.0f / keep_prob);
  MNIST_LAUNCH_CHECK("relu_dropout_backward_kernel");
}

#define MNIST_INSTANTIATE(T)                                                             \
  template void dropout_forward<T>(const T*, T*, std::size_t, float, std::uint64_t,      \
                                   const std::int64_t*, cudaStream_t);                   \
  template void relu_dropout_backward<T>(const float*, const T*, T*, std::size_t, float, \
                                         cudaStream_t);
MNIST_INSTANTIATE(float)
MNIST_INSTANTIATE(__nv_bfloat16)
#undef MNIST_INSTANTIATE

}  // namespace mnist::kernels
