// The baseline's input: images gathered from the GPU-resident byte dataset into the matrix
// cuBLASLt reads, stored in the products' format (fp32, or bf16 for --precision bf16). (Our
// backend never stores that matrix: its GEMM reads the bytes directly.)
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace mnist::kernels {

// x[r, :] = images[sample(r), :] / 255 and y[r] = labels[sample(r)] for the batch of training
// step *step, where sample(r) follows the sample stream (common/sample_stream.h) through the two
// epoch orders in `orders`. T is float or __nv_bfloat16 (the fp32 value rounded to nearest).
template <typename T>
void gather_batch(const std::uint8_t* images, const std::uint8_t* labels,
                  const std::int32_t* orders, int count, const std::int64_t* step, int batch,
                  int pixels, T* x, std::uint8_t* y, cudaStream_t stream);

// out[i] = bytes[i] / 255 for n values, T as above.
template <typename T>
void bytes_to_unit(const std::uint8_t* bytes, T* out, std::size_t n, cudaStream_t stream);

}  // namespace mnist::kernels
