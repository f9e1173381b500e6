#include "launch.cuh"
#include "softmax_xent.h"

namespace mnist::kernels {
namespace {

// One thread per row: with 10 classes a row is 40 bytes, so a warp reads 32 rows in a few lines.
__global__ void softmax_xent_kernel(const float* __restrict__ logits,
                                    const std::uint8_t* __restrict__ labels,
                                    float* __restrict__ row_loss,
                                    std::uint8_t* __restrict__ row_correct,
                                    float* __restrict__ dlogits, int rows, int classes,
                                    std::int64_t* step) {
  await_previous_kernel();
  const int r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r == 0) *step += 1;
  if (r >= rows) return;
  const float* z = logits + std::size_t(r) * classes;
  int best = 0;
  for (int j = 1; j < classes; ++j) best = z[j] > z[best] ? j : best;
  const float zmax = z[best];
  float sum = 0.0f;
  for (int j = 0; j < classes; ++j) sum += __expf(z[j] - zmax);
  const float log_sum = logf(sum);
  const int label = labels[r];
  row_loss[r] = log_sum - (z[label] - zmax);
  row_correct[r] = best == label;
  const float inv_rows = 1.0f / rows;
  for (int j = 0; j < classes; ++j) {
    const float p = __expf(z[j] - zmax - log_sum);
    dlogits[std::size_t(r) * classes + j] = (p - (j == label ? 1.0f : 0.0f)) * inv_rows;
  }
}

__global__ void count_correct_kernel(const float* __restrict__ logits,
                                     const std::uint8_t* __restrict__ labels, int rows, int classes,
                                     int* correct, float* __restrict__ row_loss) {
  const int r = blockIdx.x * blockDim.x + threadIdx.x;
  int hit = 0;
  if (r < rows) {
    const float* z = logits + std::size_t(r) * classes;
    int best = 0;
    for (int j = 1; j < classes; ++j) best = z[j] > z[best] ? j : best;
    hit = best == labels[r];
    if (row_loss) {
      float sum = 0.0f;
      for (int j = 0; j < classes; ++j) sum += __expf(z[j] - z[best]);
      row_loss[r] = logf(sum) - (z[labels[r]] - z[best]);
    }
  }
  // Warp-aggregated: one atomic per warp instead of one per row.
  const unsigned ballot = __ballot_sync(0xffffffffu, hit);
  if ((threadIdx.x & 31) == 0 && ballot) atomicAdd(correct, __popc(ballot));
}

}  // namespace

void softmax_xent(const float* logits, const std::uint8_t* labels, float* row_loss,
                  std::uint8_t* row_correct, float* dlogits, int rows, int classes,
                  std::int64_t* step, cudaStream_t stream) {
  launch(MNIST_HERE, "softmax_xent_kernel", softmax_xent_kernel, (rows + 127) / 128, 128, 0, stream,
         logits, labels, row_loss, row_correct, dlogits, rows, classes, step);
}

void count_correct(const float* logits, const std::uint8_t* labels, int rows, int classes,
                   int* correct, float* row_loss, cudaStream_t stream) {
  count_correct_kernel<<<(rows + 255) / 256, 256, 0, stream>>>(logits, labels, rows, classes,
                                                               correct, row_loss);
  MNIST_LAUNCH_CHECK("count_correct_kernel");
}

}  // namespace mnist::kernels
