#include "cuda_error.h"
#include "reduce.h"

namespace mnist::kernels {
namespace {

__global__ void mean_kernel(const float* __restrict__ in, float* __restrict__ out, int n) {
  __shared__ float partial[256];
  float sum = 0.0f;
  for (int i = threadIdx.x; i < n; i += blockDim.x) sum += in[i];
  partial[threadIdx.x] = sum;
  __syncthreads();
  for (int width = blockDim.x / 2; width > 0; width /= 2) {
    if (threadIdx.x < width) partial[threadIdx.x] += partial[threadIdx.x + width];
    __syncthreads();
  }
  if (threadIdx.x == 0) *out = partial[0] / n;
}

}  // namespace

void mean(const float* in, float* out, int n, cudaStream_t stream) {
  mean_kernel<<<1, 256, 0, stream>>>(in, out, n);
  MNIST_LAUNCH_CHECK("mean_kernel");
}

}  // namespace mnist::kernels
