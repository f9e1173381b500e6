#include "cuda_check.h"
#include "output_layer.h"

namespace mnist::kernels {
namespace {

constexpr int kWarpsPerBlock = 8;

// One warp per row: lanes stride over the hidden units, then a butterfly reduction leaves all ten
// logits in every lane.
__device__ __forceinline__ void row_logits(const float* __restrict__ h_row, int hidden,
                                           const float* __restrict__ w2,
                                           const float* __restrict__ b2, int lane,
                                           float (&z)[kOutputClasses]) {
#pragma unroll
  for (int j = 0; j < kOutputClasses; ++j) z[j] = 0.0f;
  for (int i = lane; i < hidden; i += 32) {
    const float hv = h_row[i];
    const float* w = w2 + std::size_t(i) * kOutputClasses;
#pragma unroll
    for (int j = 0; j < kOutputClasses; ++j) z[j] = fmaf(hv, w[j], z[j]);
  }
#pragma unroll
  for (int j = 0; j < kOutputClasses; ++j) {
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2)
      z[j] += __shfl_xor_sync(0xffffffffu, z[j], offset);
    z[j] += b2[j];
  }
}

__global__ void output_layer_train_kernel(const float* __restrict__ h, int rows, int hidden,
                                          const float* __restrict__ w2,
                                          const float* __restrict__ b2,
                                          const std::uint8_t* __restrict__ labels, float keep_prob,
                                          float* __restrict__ row_loss, float* __restrict__ dlogits,
                                          float* __restrict__ dh, std::int64_t* step) {
  const int lane = threadIdx.x % 32;
  const int r = blockIdx.x * kWarpsPerBlock + threadIdx.x / 32;
  if (blockIdx.x == 0 && threadIdx.x == 0) *step += 1;
  if (r >= rows) return;
  const float* h_row = h + std::size_t(r) * hidden;
  float z[kOutputClasses];
  row_logits(h_row, hidden, w2, b2, lane, z);
  float zmax = z[0];
#pragma unroll
  for (int j = 1; j < kOutputClasses; ++j) zmax = fmaxf(zmax, z[j]);
  float sum = 0.0f;
#pragma unroll
  for (int j = 0; j < kOutputClasses; ++j) sum += __expf(z[j] - zmax);
  const float log_sum = __logf(sum);
  const int label = labels[r];
  float dz[kOutputClasses];
  float z_label = 0.0f;
#pragma unroll
  for (int j = 0; j < kOutputClasses; ++j) {
    const float p = __expf(z[j] - zmax - log_sum);
    dz[j] = (p - (j == label ? 1.0f : 0.0f)) / rows;
    if (j == label) z_label = z[j];
    if (lane == j) dlogits[std::size_t(r) * kOutputClasses + j] = dz[j];
  }
  if (lane == 0) row_loss[r] = log_sum - (z_label - zmax);
  const float inv_keep = 1.0f / keep_prob;
  for (int i = lane; i < hidden; i += 32) {
    const float* w = w2 + std::size_t(i) * kOutputClasses;
    float s = 0.0f;
#pragma unroll
    for (int j = 0; j < kOutputClasses; ++j) s = fmaf(dz[j], w[j], s);
    dh[std::size_t(r) * hidden + i] = h_row[i] > 0.0f ? s * inv_keep : 0.0f;
  }
}

__global__ void output_layer_count_kernel(const float* __restrict__ h, int rows, int hidden,
                                          const float* __restrict__ w2,
                                          const float* __restrict__ b2,
                                          const std::uint8_t* __restrict__ labels, int* correct) {
  __shared__ int block_correct;
  if (threadIdx.x == 0) block_correct = 0;
  __syncthreads();
  const int lane = threadIdx.x % 32;
  const int r = blockIdx.x * kWarpsPerBlock + threadIdx.x / 32;
  if (r < rows) {
    float z[kOutputClasses];
    row_logits(h + std::size_t(r) * hidden, hidden, w2, b2, lane, z);
    int best = 0;
#pragma unroll
    for (int j = 1; j < kOutputClasses; ++j) best = z[j] > z[best] ? j : best;
    if (lane == 0 && best == labels[r]) atomicAdd(&block_correct, 1);
  }
  __syncthreads();
  if (threadIdx.x == 0 && block_correct) atomicAdd(correct, block_correct);
}

unsigned blocks_for(int rows) {
  return static_cast<unsigned>((rows + kWarpsPerBlock - 1) / kWarpsPerBlock);
}

}  // namespace

void output_layer_train(const float* h, int rows, int hidden, const float* w2, const float* b2,
                        const std::uint8_t* labels, float keep_prob, float* row_loss,
                        float* dlogits, float* dh, std::int64_t* step, cudaStream_t stream) {
  output_layer_train_kernel<<<blocks_for(rows), kWarpsPerBlock * 32, 0, stream>>>(
      h, rows, hidden, w2, b2, labels, keep_prob, row_loss, dlogits, dh, step);
  MNIST_LAUNCH_CHECK("output_layer_train_kernel");
}

void output_layer_count_correct(const float* h, int rows, int hidden, const float* w2,
                                const float* b2, const std::uint8_t* labels, int* correct,
                                cudaStream_t stream) {
  output_layer_count_kernel<<<blocks_for(rows), kWarpsPerBlock * 32, 0, stream>>>(
      h, rows, hidden, w2, b2, labels, correct);
  MNIST_LAUNCH_CHECK("output_layer_count_kernel");
}

}  // namespace mnist::kernels
