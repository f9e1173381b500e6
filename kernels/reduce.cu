#include "launch.cuh"
#include "reduce.h"

namespace mnist::kernels {
namespace {

constexpr int kThreads = 256;

// The sum of in[0..n), fixed order (every thread's strided share, then a tree); thread 0 has it.
__device__ float block_sum(const float* __restrict__ in, int n, float* partial) {
  float sum = 0.0f;
  for (int i = threadIdx.x; i < n; i += kThreads) sum += in[i];
  partial[threadIdx.x] = sum;
  __syncthreads();
  for (int width = kThreads / 2; width > 0; width /= 2) {
    if (threadIdx.x < width) partial[threadIdx.x] += partial[threadIdx.x + width];
    __syncthreads();
  }
  return partial[0];
}

__global__ void mean_kernel(const float* __restrict__ in, float* __restrict__ out, int n) {
  __shared__ float partial[kThreads];
  const float sum = block_sum(in, n, partial);
  if (threadIdx.x == 0) *out = sum / n;
}

__global__ void step_metrics_kernel(const float* __restrict__ row_loss,
                                    const std::uint8_t* __restrict__ row_correct, int rows,
                                    const std::int64_t* step, float2* metrics, int capacity) {
  await_previous_kernel();
  __shared__ float partial[kThreads];
  __shared__ int correct;
  if (threadIdx.x == 0) correct = 0;
  const float sum = block_sum(row_loss, rows, partial);  // its syncs order the zeroing above
  int mine = 0;
  for (int i = threadIdx.x; i < rows; i += kThreads) mine += row_correct[i];
  atomicAdd(&correct, mine);
  __syncthreads();
  if (threadIdx.x == 0) {
    const std::int64_t slot = (*step - 1) % capacity;
    metrics[slot] = make_float2(sum / rows, float(correct) / float(rows));
  }
}

}  // namespace

void mean(const float* in, float* out, int n, cudaStream_t stream) {
  mean_kernel<<<1, kThreads, 0, stream>>>(in, out, n);
  MNIST_LAUNCH_CHECK("mean_kernel");
}

void step_metrics(const float* row_loss, const std::uint8_t* row_correct, int rows,
                  const std::int64_t* step, float2* metrics, int capacity, cudaStream_t stream) {
  launch(MNIST_HERE, "step_metrics_kernel", step_metrics_kernel, 1, kThreads, 0, stream, row_loss,
         row_correct, rows, step, metrics, capacity);
}

}  // namespace mnist::kernels
