// The seam between the training loop and the maths. The loop (order, schedule, evaluation cadence,
// logging, checkpoints) is written once; a backend owns the parameters and implements one training
// step (forward, loss, backward, Adam) and one evaluation.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "train/model.h"

namespace mnist {

// Timestamps in a backend's own order of work, for --benchmark: device events on a GPU (so the
// host's launch overhead between back-to-back steps is not counted), a host clock on the CPU.
class Stopwatch {
 public:
  virtual ~Stopwatch() = default;
  virtual void mark() = 0;
  // Microseconds between consecutive marks (waits for the work before the last mark).
  virtual std::vector<double> intervals_us() = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string name() const = 0;

  // The order of epoch `epoch` (kernels/common/sample_stream.h). EpochFeeder provides each epoch
  // before the first step that draws from it; a backend keeps the two newest.
  virtual void set_epoch_order(std::int64_t epoch, const std::vector<std::int32_t>& order) = 0;

  // One step on the next batch: forward, loss, backward, Adam. Asynchronous on a GPU.
  virtual void train_step() = 0;

  // Waits until queued work is done (a no-op where nothing is asynchronous).
  virtual void synchronize() {}

  // Mean cross-entropy of the last training step's batch (waits for the step).
  virtual float last_loss() = 0;

  // Number of test images classified correctly (dropout off).
  virtual int evaluate_test() = 0;

  // Training steps taken so far (cheap; no copy of the parameters).
  virtual std::int64_t steps_taken() const = 0;

  virtual TrainState state() = 0;
  virtual void set_state(const TrainState& state) = 0;

  virtual std::unique_ptr<Stopwatch> stopwatch() = 0;
};

}  // namespace mnist
