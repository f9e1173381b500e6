#include "cuda_error.h"
#include "nll.h"

namespace mnist::kernels {
namespace {

__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

// One thread per row: with 10 classes a row is 40 bytes.
template <typename T>
__global__ void softmax_nll_kernel(const float* __restrict__ logits,
                                   const std::uint8_t* __restrict__ labels,
                                   float* __restrict__ row_loss,
                                   std::uint8_t* __restrict__ row_correct, T* __restrict__ dlogits,
                                   int rows, int classes, std::int64_t* step) {
  const int r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r == 0) *step += 1;
  if (r >= rows) return;
  const float* z = logits + std::size_t(r) * classes;
  int best = 0;
  for (int j = 1; j < classes; ++j) best = z[j] > z[best] ? j : best;
  const float zmax = z[best];
  float sum = 0.0f;
  for (int j = 0; j < classes; ++j) sum += expf(z[j] - zmax);
  const float log_sum = logf(sum);
  const int label = labels[r];
  row_loss[r] = log_sum - (z[label] - zmax);
  row_correct[r] = best == label;
  for (int j = 0; j < classes; ++j) {
    const float p = expf(z[j] - zmax - log_sum);
    store(dlogits + std::size_t(r) * classes + j, (p - (j == label ? 1.0f : 0.0f)) / rows);
  }
}

}  // namespace

template <typename T>
void softmax_nll(const float* logits, const std::uint8_t* labels, float* row_loss,
                 std::uint8_t* row_correct, T* dlogits, int rows, int classes, std::int64_t* step,
                 cudaStream_t stream) {
  softmax_nll_kernel<<<(rows + 127) / 128, 128, 0, stream>>>(logits, labels, row_loss, row_correct,
                                                             dlogits, rows, classes, step);
  MNIST_LAUNCH_CHECK("softmax_nll_kernel");
}

template void softmax_nll<float>(const float*, const std::uint8_t*, float*, std::uint8_t*, float*,
                                 int, int, std::int64_t*, cudaStream_t);
template void softmax_nll<__nv_bfloat16>(const float*, const std::uint8_t*, float*, std::uint8_t*,
                                         __nv_bfloat16*, int, int, std::int64_t*, cudaStream_t);

}  // namespace mnist::kernels
