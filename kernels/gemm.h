// The model's matrix products as tiled kernels with fused prologues and epilogues, in fp32 on the
// CUDA cores or (precision, common/precision.h) TF32/BF16 on the tensor cores:
//   forward:  Y = X*W + b, X gathered from the GPU-resident bytes and scaled to [0,1] while it is
//             loaded (never stored as floats), then ReLU + inverted dropout in the epilogue;
//   backward: [dW; db] = [X^T; 1^T] * dZ, i.e. the weight gradient with the bias gradient as one
//             extra row, and Adam applied in the epilogue, so gradients are never stored.
// Shapes too small to fill the GPU split the reduction (split-K): each slice stores a partial
// product and the next kernel adds the slices in a fixed order (results stay reproducible).
// Row-major throughout; all stream-ordered and graph-capturable; every launch is checked. A
// tensor-core precision on a GPU older than compute capability 8.0 throws std::invalid_argument
// (the backends refuse it earlier, with exit 2).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "common/mnist_shape.h"
#include "common/precision.h"

namespace mnist::kernels {

// Rows of a matrix of images held as bytes. Row r is image:
//   indices[r]                                  when indices is set (a batch gathered earlier);
//   orders[order_slot(stream_position(*step, batch, r, count))]
//                                               when orders is set (the sample stream,
//                                               common/sample_stream.h);
//   r                                           otherwise (the whole test set).
// A data-parallel shard reads rows row_offset.. of the global batch of `batch` rows: its row r is
// the stream's row row_offset + r.
struct ByteRows {
  const std::uint8_t* images = nullptr;  // count x 784
  const std::int32_t* indices = nullptr;
  const std::int32_t* orders = nullptr;
  int count = 0;
  const std::int64_t* step = nullptr;  // device pointer
  int batch = 0;
  int row_offset = 0;
};

// Fused epilogue of the forward product: ReLU, then inverted dropout with the Philox mask of
// (seed, *step, row * n + col) scaled by 1 / keep_prob. keep_prob >= 1: ReLU only. A data-parallel
// shard's rows are the global batch's rows row_offset.., so each sample keeps its mask.
struct ReluDropout {
  bool enabled = false;
  float keep_prob = 1.0f;
  std::uint64_t seed = 0;
  const std::int64_t* step = nullptr;  // device pointer: the training step counter
  int row_offset = 0;
};

// TF Adam applied to a layer's [W; b] region of the flat parameter array, with t = *step: by the
// step convention (adam_rule.cuh) the loss kernel has already counted this step.
struct AdamUpdate {
  float* params = nullptr;
  float* m = nullptr;
  float* v = nullptr;
  float lr = 0, beta1 = 0, beta2 = 0, eps = 0;  // the model's Adam constants, set by the caller
  const std::int64_t* step = nullptr;
  // Room for weight_grad_splits(...) partial gradients of the region, or null. With it, long
  // reductions (large batches) are split over more blocks (see gemm.cu).
  float* split_scratch = nullptr;
};

// How many slices the weight gradient of an (in + 1) x n region over `batch` rows is split into
// when split_scratch is given (1: never split at this shape, no scratch needed).
int weight_grad_splits(int in, int n, int batch);

// Where the forward product records the batch it gathered (all optional): batch_images[r] = the
// image of row r, batch_labels[r] = labels[that image]. Later kernels of the step read these rather
// than the step counter.
// batch_step, when set, receives the step counter the batch was drawn at (kernels later in the
// step read it for the dropout mask while the counter itself advances).
struct GatherRecord {
  const std::uint8_t* labels = nullptr;
  std::uint8_t* batch_labels = nullptr;
  std::int32_t* batch_images = nullptr;
  std::int64_t* batch_step = nullptr;
};

constexpr int kMaxForwardSplits = 16;

// How many slices linear_forward_*split cuts the k-deep reduction into for an m x n output
// (1: the shape fills the GPU unsplit; use the unsplit product).
int forward_splits(int m, int n, int k = kImagePixels);

// partials[s][m][n] = X[:, slice s] * W[slice s, :] for s < forward_splits(m, n), with X gathered
// as in linear_forward_bytes (and the batch recorded). No bias and no activation: the consumer
// adds the slices in order, then applies them (output_layer_train's SplitHidden).
void linear_forward_bytes_split(const ByteRows& x, const float* w, float* partials, int m, int n,
                                const GatherRecord& record, cudaStream_t stream,
                                Precision precision = Precision::kFp32);

// The same for a float X[m, k] (the GEMM comparison of --benchmark).
void linear_forward_split(const float* x, const float* w, float* partials, int m, int k, int n,
                          cudaStream_t stream, Precision precision = Precision::kFp32);

// Y[m, n] = X[m, :] * W[784, n] + bias[n], then the epilogue.
void linear_forward_bytes(const ByteRows& x, const float* w, const float* bias, float* y, int m,
                          int n, const ReluDropout& epilogue, const GatherRecord& record,
                          cudaStream_t stream, Precision precision = Precision::kFp32);

// The rows of an m x n forward product (unsplit) that fill whole waves of the GPU's largest
// tiles, or m when the product is not that large or its last wave would be mostly full. A product
// of more rows runs best as two: these rows with the large tiles, the rest with smaller ones,
// rather than a last wave of large tiles that leaves most SMs idle (the evaluation's 10,000 rows
// on 132 SMs: 316 tiles of 128 x 128, a second wave of 52).
int forward_wave_rows(int m, int n);

// Y[m, n] = X[m, k] * W[k, n] + bias[n] for a float X (the GEMM comparison of --benchmark).
void linear_forward(const float* x, const float* w, const float* bias, float* y, int m, int k,
                    int n, const ReluDropout& epilogue, cudaStream_t stream,
                    Precision precision = Precision::kFp32);

// G = [X^T; 1^T] * dZ  ((784 + 1) x n, reduction over the batch), then Adam on that region.
void weight_grad_adam_bytes(const ByteRows& x, const float* dz, int batch, int n,
                            const AdamUpdate& adam, cudaStream_t stream,
                            Precision precision = Precision::kFp32);

// G = [H^T; 1^T] * dZ  ((k + 1) x n, H is batch x k), then Adam on that region.
void weight_grad_adam(const float* h, int k, const float* dz, int batch, int n,
                      const AdamUpdate& adam, cudaStream_t stream,
                      Precision precision = Precision::kFp32);

// Data-parallel training stores the gradient instead, to be all-reduced before Adam:
//   grad = scale * [X^T; 1^T] * dZ  ((784 + 1) x n, X the gathered batch)      (weight_grad_bytes)
//   grad = scale * [H^T; 1^T] * dZ  ((k + 1) x n)                             (weight_grad)
// With a split_scratch of weight_grad_splits(...) regions, long reductions are split and the
// slices added in a fixed order (reproducible).
void weight_grad_bytes(const ByteRows& x, const float* dz, int batch, int n, float scale,
                       float* grad, float* split_scratch, cudaStream_t stream,
                       Precision precision = Precision::kFp32);
void weight_grad(const float* h, int k, const float* dz, int batch, int n, float scale, float* grad,
                 float* split_scratch, cudaStream_t stream, Precision precision = Precision::kFp32);

// Adds `splits` partial gradients (each n values, in order) and applies Adam to the region.
void adam_from_partials(const float* partials, int splits, std::size_t n, const AdamUpdate& adam,
                        cudaStream_t stream);

}  // namespace mnist::kernels
