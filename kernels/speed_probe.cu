#include <stdexcept>

#include "cuda_error.h"
#include "speed_probe.h"

namespace mnist::kernels {
namespace {

constexpr int kThreads = 256;
// Loads in flight per thread in the copy: one would leave too few bytes in flight to cover
// HBM's latency at full bandwidth.
constexpr int kCopyBatch = 4;

__global__ void fma_throughput_kernel(float* __restrict__ out, int steps, float a, float b) {
  float chain[kFmaChains];
#pragma unroll
  for (int c = 0; c < kFmaChains; ++c) chain[c] = __fmaf_rn(float(threadIdx.x), 1e-3f, float(c));
  for (int s = 0; s < steps; s += kFmaUnroll) {
#pragma unroll
    for (int u = 0; u < kFmaUnroll; ++u) {
#pragma unroll
      for (int c = 0; c < kFmaChains; ++c) chain[c] = __fmaf_rn(chain[c], a, b);
    }
  }
  float sum = 0.0f;
#pragma unroll
  for (int c = 0; c < kFmaChains; ++c) sum += chain[c];
  out[blockIdx.x * blockDim.x + threadIdx.x] = sum;
}

__global__ void copy_float4_kernel(const float4* __restrict__ src, float4* __restrict__ dst,
                                   std::size_t count) {
  const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
  std::size_t i = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  for (; i + (kCopyBatch - 1) * stride < count; i += kCopyBatch * stride) {
    float4 v[kCopyBatch];
#pragma unroll
    for (int k = 0; k < kCopyBatch; ++k) v[k] = src[i + k * stride];
#pragma unroll
    for (int k = 0; k < kCopyBatch; ++k) dst[i + k * stride] = v[k];
  }
  for (; i < count; i += stride) dst[i] = src[i];
}

// Blocks of `kernel` that fit on the current device at once.
template <class Kernel>
int resident_blocks(Kernel kernel) {
  int device = 0, sms = 0, per_sm = 0;
  MNIST_CUDA_CHECK(cudaGetDevice(&device));
  MNIST_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  MNIST_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, 0));
  return sms * per_sm;
}

}  // namespace

int fma_throughput_threads() { return resident_blocks(fma_throughput_kernel) * kThreads; }

void fma_throughput(float* out, int threads, int steps, cudaStream_t stream) {
  if (threads <= 0 || threads % kThreads != 0 || steps <= 0 || steps % kFmaUnroll != 0)
    throw std::invalid_argument(
        "fma_throughput: threads must be a positive multiple of 256 and "
        "steps a positive multiple of kFmaUnroll");
  // a < 1 keeps every chain bounded (it converges to b / (1 - a) = 1): no infinities, no
  // subnormals, whose handling could differ in speed.
  fma_throughput_kernel<<<threads / kThreads, kThreads, 0, stream>>>(out, steps, 0.999f, 0.001f);
  MNIST_LAUNCH_CHECK("fma_throughput_kernel");
}

void copy_float4(const float4* src, float4* dst, std::size_t count, cudaStream_t stream) {
  if (count == 0) throw std::invalid_argument("copy_float4: nothing to copy");
  copy_float4_kernel<<<resident_blocks(copy_float4_kernel), kThreads, 0, stream>>>(src, dst, count);
  MNIST_LAUNCH_CHECK("copy_float4_kernel");
}

}  // namespace mnist::kernels
