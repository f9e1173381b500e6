// Four-element vectors for the kernels: operands and results move in runs of four consecutive
// elements, one 16-byte (floats) or 4-byte (pixels) access when the run is whole and aligned,
// element by element otherwise. `valid` counts the elements of the run inside the matrix (it may
// be <= 0: nothing is read or written).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "common/mnist_shape.h"

namespace mnist::kernels {

using Vec4 = float[4];

__device__ __forceinline__ bool aligned(const void* p, unsigned bytes) {
  return (reinterpret_cast<std::uintptr_t>(p) & (bytes - 1)) == 0;
}

__device__ __forceinline__ void zero4(Vec4& out) {
#pragma unroll
  for (int q = 0; q < 4; ++q) out[q] = 0.0f;
}

__device__ __forceinline__ void load4(const float* src, int valid, Vec4& out) {
  if (valid >= 4 && aligned(src, 16)) {
    const float4 t = *reinterpret_cast<const float4*>(src);
    out[0] = t.x, out[1] = t.y, out[2] = t.z, out[3] = t.w;
    return;
  }
#pragma unroll
  for (int q = 0; q < 4; ++q) out[q] = q < valid ? src[q] : 0.0f;
}

// Byte b as a float without the conversion unit (busy shared-memory/special-function queue):
// 2^23 + b has b in its low mantissa bits, and subtracting 2^23 is exact.
__device__ __forceinline__ float byte_to_float(std::uint32_t word, int q) {
  return __uint_as_float(0x4B000000u | ((word >> (8 * q)) & 0xFFu)) - 8388608.0f;
}

// Pixels, scaled to [0, 1] as they are read.
__device__ __forceinline__ void load4(const std::uint8_t* src, int valid, Vec4& out) {
  if (valid >= 4 && aligned(src, 4)) {
    const std::uint32_t word = *reinterpret_cast<const std::uint32_t*>(src);
#pragma unroll
    for (int q = 0; q < 4; ++q) out[q] = byte_to_float(word, q) * kPixelScale;
    return;
  }
#pragma unroll
  for (int q = 0; q < 4; ++q) out[q] = q < valid ? src[q] * kPixelScale : 0.0f;
}

__device__ __forceinline__ void store4(float* dst, const Vec4& v, int valid) {
  if (valid >= 4 && aligned(dst, 16)) {
    *reinterpret_cast<float4*>(dst) = make_float4(v[0], v[1], v[2], v[3]);
    return;
  }
#pragma unroll
  for (int q = 0; q < 4; ++q)
    if (q < valid) dst[q] = v[q];
}

}  // namespace mnist::kernels
