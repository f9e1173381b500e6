// The MLP's whole training step as one cooperative kernel, for small batches (latency-bound: at
// batch 100 the step is 0.16 GFLOP, and four dependent kernels spend most of their time starting
// and draining). Each block owns a few hidden units: their W1 columns, b1 entries, W2 rows and
// the Adam state of all of these, so the only exchange between blocks is the batch's 10 logits
// per row (two grid-wide barriers):
//   1. gather the batch's bytes into shared memory; h[:, own units] = dropout(relu(X W1 + b1));
//      this block's share of the logits, h[:, own] * W2[own, :], to `partial_logits`;
//   2. (barrier) one row per block: logits = b2 + the blocks' shares in block order, softmax
//      cross-entropy, its gradient to `dlogits`, row loss and hit; block 0 advances *step;
//   3. (barrier) every block reads dlogits: the gradients of its own parameters (dW2, db2 on
//      block 0, dh through the old W2 and the ReLU/dropout mask, dW1, db1) and Adam on them.
// Same model, sample stream (common/sample_stream.h), dropout draws (common/philox.h), loss and
// Adam rule (adam_rule.cuh) as the tiled kernels; every sum runs in a fixed order, so a step is
// bitwise reproducible (not bitwise equal to the tiled kernels': another summation order).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "common/fused_step_limits.h"
#include "gemm.h"

namespace mnist::kernels {

struct FusedStep {
  ByteRows batch{};                          // images, orders, count, step, batch (no indices)
  const std::uint8_t* labels = nullptr;      // of the training set
  float *w1 = nullptr, *b1 = nullptr;        // 784 x hidden, hidden
  float *w2 = nullptr, *b2 = nullptr;        // hidden x 10, 10
  float *m = nullptr, *v = nullptr;          // Adam moments, laid out like the parameters
  std::size_t w1_offset = 0, b1_offset = 0;  // of w1 .. b2 in the flat parameter array (for m, v)
  std::size_t w2_offset = 0, b2_offset = 0;
  int hidden = 0;
  float keep_prob = 1.0f;
  std::uint64_t seed = 0;
  float lr = 0, beta1 = 0, beta2 = 0, eps = 0;
  std::int64_t* step = nullptr;  // read as the batch's index, then advanced (adam_rule.cuh)
  // Outputs for the step's metrics and the batch record (as the tiled step writes them).
  float* row_loss = nullptr;
  std::uint8_t* row_correct = nullptr;
  std::int32_t* batch_images = nullptr;
  std::uint8_t* batch_labels = nullptr;
  std::int64_t* batch_step = nullptr;
  // Scratch: fused_step_scratch_floats(batch, hidden) floats.
  float* scratch = nullptr;
};

// How the fused step runs a shape on the current device: 4 hidden units per block where every
// block fits on the GPU at once, else 8; or why it cannot (`unsupported`: a batch above
// kFusedMaxBatch, more shared memory than a block may have, more blocks than can be resident, no
// cooperative launch). Queries the device: make it once per backend, not per step.
struct FusedPlan {
  int units = 0, blocks = 0, shared_bytes = 0;
  const char* unsupported = nullptr;
};
FusedPlan plan_fused_step(int batch, int hidden);

std::size_t fused_step_scratch_floats(int batch, int hidden);

// Enqueues the step as `plan` (of this batch and hidden layer) says: a cooperative launch,
// graph-capturable. Throws std::invalid_argument with the plan's reason when it is unsupported.
void fused_step(const FusedStep& step, const FusedPlan& plan, cudaStream_t stream);

}  // namespace mnist::kernels
