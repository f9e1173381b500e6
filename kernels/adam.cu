#include "adam.h"
#include "cuda_check.h"

namespace mnist::kernels {
namespace {

__global__ void adam_kernel(float* __restrict__ p, const float* __restrict__ g,
                            float* __restrict__ m, float* __restrict__ v, std::size_t n, float lr,
                            float beta1, float beta2, float eps, const std::int64_t* step) {
  const float t = static_cast<float>(*step + 1);
  const float lr_t = lr * sqrtf(1.0f - powf(beta2, t)) / (1.0f - powf(beta1, t));
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
       i += std::size_t(gridDim.x) * blockDim.x) {
    const float gi = g[i];
    const float mi = beta1 * m[i] + (1.0f - beta1) * gi;
    const float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] -= lr_t * mi / (sqrtf(vi) + eps);
  }
}

__global__ void advance_step_kernel(std::int64_t* step) { *step += 1; }

}  // namespace

void adam_update(float* params, const float* grads, float* m, float* v, std::size_t n, float lr,
                 float beta1, float beta2, float eps, const std::int64_t* step,
                 cudaStream_t stream) {
  const auto blocks = static_cast<unsigned>(std::min<std::size_t>((n + 255) / 256, 1024));
  adam_kernel<<<blocks, 256, 0, stream>>>(params, grads, m, v, n, lr, beta1, beta2, eps, step);
  MNIST_LAUNCH_CHECK("adam_kernel");
}

void advance_step(std::int64_t* step, cudaStream_t stream) {
  advance_step_kernel<<<1, 1, 0, stream>>>(step);
  MNIST_LAUNCH_CHECK("advance_step_kernel");
}

}  // namespace mnist::kernels
