// The sample stream: which training image each row of each step's batch is.
//
// Training step t (0-based) takes samples t*B .. t*B+B-1 of the endless stream formed by
// concatenating the epoch orders (permutations of the N training images, one per epoch); sample s
// is image order(s / N)[s % N], so a batch may straddle two epochs, as TF's next_batch did. Holders
// of the orders keep the two newest epochs (a batch spans at most two when B <= N): epoch e in
// slot e % 2. The CPU reference, the training loop and the kernels all use these functions.
#pragma once

#include <cstddef>
#include <cstdint>

#include "host_device.h"

namespace mnist {

// Epoch orders are held in two slots: a batch spans at most two epochs (B <= N).
constexpr int kEpochSlots = 2;
MNIST_HD int epoch_slot(std::int64_t epoch) { return static_cast<int>(epoch % kEpochSlots); }

struct StreamPosition {
  std::int64_t epoch;
  int index;  // position inside that epoch's order
};

// Where row `row` of the batch of step `step` sits in the stream.
MNIST_HD StreamPosition stream_position(std::int64_t step, int batch, int row, int train_count) {
  const std::int64_t sample = step * batch + row;
  return {sample / train_count, static_cast<int>(sample % train_count)};
}

// Index into the concatenated epoch slots of that position.
MNIST_HD std::size_t order_slot(StreamPosition p, int train_count) {
  return static_cast<std::size_t>(epoch_slot(p.epoch)) * train_count + p.index;
}

}  // namespace mnist
