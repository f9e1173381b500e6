#include "cuda_check.h"
#include "reduce.h"

namespace mnist::kernels {
namespace {

// A block of 32 x 8 threads covers 32 columns; the 8 row-groups each sum a strided slice of the
// rows (coalesced across columns), then combine through shared memory.
__global__ void column_sums_kernel(const float* __restrict__ in, float* __restrict__ out, int rows,
                                   int cols) {
  __shared__ float partial[8][33];
  const int j = blockIdx.x * 32 + threadIdx.x;
  float sum = 0.0f;
  if (j < cols) {
    for (int r = threadIdx.y; r < rows; r += 8) sum += in[std::size_t(r) * cols + j];
  }
  partial[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y == 0 && j < cols) {
    float total = 0.0f;
    for (int g = 0; g < 8; ++g) total += partial[g][threadIdx.x];
    out[j] = total;
  }
}

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

void column_sums(const float* in, float* out, int rows, int cols, cudaStream_t stream) {
  column_sums_kernel<<<(cols + 31) / 32, dim3(32, 8), 0, stream>>>(in, out, rows, cols);
  MNIST_LAUNCH_CHECK("column_sums_kernel");
}

void mean(const float* in, float* out, int n, cudaStream_t stream) {
  mean_kernel<<<1, 256, 0, stream>>>(in, out, n);
  MNIST_LAUNCH_CHECK("mean_kernel");
}

}  // namespace mnist::kernels
