#include "adam.h"
#include "adam_rule.cuh"
#include "cuda_error.h"

namespace mnist::kernels {
namespace {

__global__ void adam_kernel(float* __restrict__ p, const float* __restrict__ g,
                            float* __restrict__ m, float* __restrict__ v, std::size_t n, float lr,
                            float beta1, float beta2, float eps, const std::int64_t* step,
                            __nv_bfloat16* __restrict__ p_bf16) {
  const AdamRule rule = AdamRule::at(lr, beta1, beta2, eps, *step);
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
       i += std::size_t(gridDim.x) * blockDim.x) {
    float pi = p[i], mi = m[i], vi = v[i];
    rule.apply(pi, mi, vi, g[i]);
    p[i] = pi;
    m[i] = mi;
    v[i] = vi;
    if (p_bf16) p_bf16[i] = __float2bfloat16_rn(pi);
  }
}

__global__ void round_to_bf16_kernel(const float* __restrict__ in, __nv_bfloat16* __restrict__ out,
                                     std::size_t n) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
       i += std::size_t(gridDim.x) * blockDim.x) {
    out[i] = __float2bfloat16_rn(in[i]);
  }
}

unsigned blocks_for(std::size_t n) {
  return static_cast<unsigned>(std::min<std::size_t>((n + 255) / 256, 1024));
}

}  // namespace

void adam_update(float* params, const float* grads, float* m, float* v, std::size_t n, float lr,
                 float beta1, float beta2, float eps, const std::int64_t* step, cudaStream_t stream,
                 __nv_bfloat16* params_bf16) {
  adam_kernel<<<blocks_for(n), 256, 0, stream>>>(params, grads, m, v, n, lr, beta1, beta2, eps,
                                                 step, params_bf16);
  MNIST_LAUNCH_CHECK("adam_kernel");
}

void round_to_bf16(const float* in, __nv_bfloat16* out, std::size_t n, cudaStream_t stream) {
  round_to_bf16_kernel<<<blocks_for(n), 256, 0, stream>>>(in, out, n);
  MNIST_LAUNCH_CHECK("round_to_bf16_kernel");
}

}  // namespace mnist::kernels
