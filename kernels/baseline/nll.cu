#include "cuda_error.h"
#include "nll.h"

namespace mnist::kernels {
namespace {

__global__ void nll_kernel(const float* __restrict__ logp, const std::uint8_t* __restrict__ labels,
                           float* __restrict__ row_loss, std::uint8_t* __restrict__ row_correct,
                           float* __restrict__ dlogp, int rows, int classes, std::int64_t* step) {
  const int r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r == 0) *step += 1;
  if (r >= rows) return;
  const int label = labels[r];
  const float* lp = logp + std::size_t(r) * classes;
  row_loss[r] = -lp[label];
  int best = 0;
  for (int j = 1; j < classes; ++j) best = lp[j] > lp[best] ? j : best;
  row_correct[r] = best == label;
  for (int j = 0; j < classes; ++j)
    dlogp[std::size_t(r) * classes + j] = j == label ? -1.0f / rows : 0.0f;
}

}  // namespace

void nll_from_log_softmax(const float* logp, const std::uint8_t* labels, float* row_loss,
                          std::uint8_t* row_correct, float* dlogp, int rows, int classes,
                          std::int64_t* step, cudaStream_t stream) {
  nll_kernel<<<(rows + 127) / 128, 128, 0, stream>>>(logp, labels, row_loss, row_correct, dlogp,
                                                     rows, classes, step);
  MNIST_LAUNCH_CHECK("nll_kernel");
}

}  // namespace mnist::kernels
