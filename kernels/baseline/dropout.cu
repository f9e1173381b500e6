#include "common/philox.h"
#include "cuda_error.h"
#include "dropout.h"

namespace mnist::kernels {
namespace {

__global__ void dropout_forward_kernel(const float* __restrict__ a, float* __restrict__ h,
                                       std::size_t n, float keep_prob, std::uint64_t seed,
                                       const std::int64_t* step) {
  const std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const float u = keep_prob >= 1.0f ? 0.0f
                                    : dropout_uniform(seed, static_cast<std::uint64_t>(*step),
                                                      static_cast<std::uint32_t>(i));
  h[i] = dropout_keep_scaled(a[i], u, keep_prob);
}

__global__ void relu_dropout_backward_kernel(const float* __restrict__ dh,
                                             const float* __restrict__ h, float* __restrict__ dz,
                                             std::size_t n, float inv_keep) {
  const std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x;
  if (i < n) dz[i] = h[i] > 0.0f ? dh[i] * inv_keep : 0.0f;
}

}  // namespace

void dropout_forward(const float* a, float* h, std::size_t n, float keep_prob, std::uint64_t seed,
                     const std::int64_t* step, cudaStream_t stream) {
  dropout_forward_kernel<<<static_cast<unsigned>((n + 255) / 256), 256, 0, stream>>>(
      a, h, n, keep_prob, seed, step);
  MNIST_LAUNCH_CHECK("dropout_forward_kernel");
}

void relu_dropout_backward(const float* dh, const float* h, float* dz, std::size_t n,
                           float keep_prob, cudaStream_t stream) {
  const auto blocks = static_cast<unsigned>((n + 255) / 256);
  relu_dropout_backward_kernel<<<blocks, 256, 0, stream>>>(dh, h, dz, n, 1.0f / keep_prob);
  MNIST_LAUNCH_CHECK("relu_dropout_backward_kernel");
}

}  // namespace mnist::kernels
