// The baseline's input: images gathered from the GPU-resident byte dataset into the float matrix
// cuBLAS reads. (Our backend never stores that matrix: its GEMM reads the bytes directly.)
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace mnist::kernels {

// x[r, :] = images[sample(r), :] / 255 and y[r] = labels[sample(r)] for the batch of training
// step *step, where sample(r) follows the sample stream (common/sample_stream.h) through the two
// epoch orders in `orders`.
void gather_batch(const std::uint8_t* images, const std::uint8_t* labels,
                  const std::int32_t* orders, int count, const std::int64_t* step, int batch,
                  int pixels, float* x, std::uint8_t* y, cudaStream_t stream);

// out[i] = bytes[i] / 255 for n values.
void bytes_to_unit_float(const std::uint8_t* bytes, float* out, std::size_t n, cudaStream_t stream);

}  // namespace mnist::kernels
