#include "batch.h"
#include "common/mnist_shape.h"
#include "common/sample_stream.h"
#include "cuda_error.h"

namespace mnist::kernels {
namespace {

__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

// One block per batch row; threads stride over the row's pixels.
template <typename T>
__global__ void gather_batch_kernel(const std::uint8_t* __restrict__ images,
                                    const std::uint8_t* __restrict__ labels,
                                    const std::int32_t* __restrict__ orders, int count,
                                    const std::int64_t* step, int batch, int pixels,
                                    T* __restrict__ x, std::uint8_t* __restrict__ y) {
  const int r = blockIdx.x;
  const int sample = orders[order_slot(stream_position(*step, batch, r, count), count)];
  const std::uint8_t* src = images + std::size_t(sample) * pixels;
  T* dst = x + std::size_t(r) * pixels;
  for (int k = threadIdx.x; k < pixels; k += blockDim.x) store(dst + k, src[k] * kPixelScale);
  if (threadIdx.x == 0) y[r] = labels[sample];
}

template <typename T>
__global__ void bytes_to_unit_kernel(const std::uint8_t* __restrict__ bytes, T* __restrict__ out,
                                     std::size_t n) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
       i += std::size_t(gridDim.x) * blockDim.x) {
    store(out + i, bytes[i] * kPixelScale);
  }
}

}  // namespace

template <typename T>
void gather_batch(const std::uint8_t* images, const std::uint8_t* labels,
                  const std::int32_t* orders, int count, const std::int64_t* step, int batch,
                  int pixels, T* x, std::uint8_t* y, cudaStream_t stream) {
  gather_batch_kernel<<<batch, 256, 0, stream>>>(images, labels, orders, count, step, batch, pixels,
                                                 x, y);
  MNIST_LAUNCH_CHECK("gather_batch_kernel");
}

template <typename T>
void bytes_to_unit(const std::uint8_t* bytes, T* out, std::size_t n, cudaStream_t stream) {
  const auto blocks = static_cast<unsigned>(std::min<std::size_t>((n + 255) / 256, 4096));
  bytes_to_unit_kernel<<<blocks, 256, 0, stream>>>(bytes, out, n);
  MNIST_LAUNCH_CHECK("bytes_to_unit_kernel");
}

#define MNIST_INSTANTIATE(T)                                                                   \
  template void gather_batch<T>(const std::uint8_t*, const std::uint8_t*, const std::int32_t*, \
                                int, const std::int64_t*, int, int, T*, std::uint8_t*,         \
                                cudaStream_t);                                                 \
  template void bytes_to_unit<T>(const std::uint8_t*, T*, std::size_t, cudaStream_t);
MNIST_INSTANTIATE(float)
MNIST_INSTANTIATE(__nv_bfloat16)
#undef MNIST_INSTANTIATE

}  // namespace mnist::kernels
