#include "adam.h"
#include "adam_rule.cuh"
#include "cuda_error.h"

namespace mnist::kernels {
namespace {

__global__ void adam_kernel(float* __restrict__ p, const float* __restrict__ g,
                            float* __restrict__ m, float* __restrict__ v, std::size_t n, float lr,
                            float beta1, float beta2, float eps, const std::int64_t* step) {
  const AdamRule rule = AdamRule::at(lr, beta1, beta2, eps, *step);
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
       i += std::size_t(gridDim.x) * blockDim.x) {
    float pi = p[i], mi = m[i], vi = v[i];
    rule.apply(pi, mi, vi, g[i]);
    p[i] = pi;
    m[i] = mi;
    v[i] = vi;
  }
}

}  // namespace

void adam_update(float* params, const float* grads, float* m, float* v, std::size_t n, float lr,
                 float beta1, float beta2, float eps, const std::int64_t* step,
                 cudaStream_t stream) {
  const auto blocks = static_cast<unsigned>(std::min<std::size_t>((n + 255) / 256, 1024));
  adam_kernel<<<blocks, 256, 0, stream>>>(params, grads, m, v, n, lr, beta1, beta2, eps, step);
  MNIST_LAUNCH_CHECK("adam_kernel");
}

}  // namespace mnist::kernels
