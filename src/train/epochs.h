// The training set's order, epoch by epoch, and the one place that hands it to a backend.
#pragma once

#include <cstdint>
#include <vector>

#include "train/backend.h"

namespace mnist {

// The order of the training set for one epoch: a permutation of 0..count-1 that depends only on
// (seed, epoch), so any epoch can be rebuilt on resume.
std::vector<std::int32_t> epoch_order(std::uint64_t seed, std::int64_t epoch, int count);

// Provides a backend with every epoch order the next step draws from (the sample stream,
// kernels/common/sample_stream.h), once each. The training loop and --benchmark both feed
// backends through it.
class EpochFeeder {
 public:
  EpochFeeder(Backend& backend, std::uint64_t seed, int batch, int train_count)
      : backend_(backend), seed_(seed), batch_(batch), train_count_(train_count) {}

  // Call before each train_step(); may copy an order to the backend (keep it out of timings).
  void before_step();

 private:
  Backend& backend_;
  std::uint64_t seed_;
  int batch_, train_count_;
  std::int64_t provided_ = -1;  // newest epoch the backend has
};

}  // namespace mnist
