// The seam between the training loop and the maths. The loop (order, schedule, evaluation cadence,
// logging, checkpoints) is written once; a backend owns the parameters and implements one training
// step (forward, loss, backward, Adam) and one evaluation.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "summary/histogram.h"
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

// The two held-out splits a backend evaluates on.
enum class EvalSplit { kTest, kValidation };

struct Evaluation {
  int correct = 0;             // images classified correctly (dropout off)
  float cross_entropy = 0.0f;  // mean softmax cross-entropy; computed only when asked (else 0)
};

// One training step's scalars, measured on its batch.
struct StepMetrics {
  std::int64_t step = 0;       // the step's index (TrainState::step before it)
  float cross_entropy = 0.0f;  // the batch's mean loss
  float accuracy = 0.0f;  // fraction of the batch classified correctly (dropout on, as trained)
};

// Statistics of one step's tensors for TensorBoard (the sample's variable_summaries and
// histograms), in the order of summary_tensor_names(): each as a TF histogram, whose min, max,
// sum and sum_squares give the scalar summaries.
struct StepStatistics {
  std::int64_t step = 0;  // the step whose forward pass they describe (its index)
  std::vector<Histogram> tensors;
};

// One op of a traced step: its name, the stream (GPU) or 0, and when it ran, in microseconds
// from the start of the step.
struct TracedOp {
  std::string name;
  int lane = 0;  // 0 the main stream; 1 the side stream of a GPU backend
  double start_us = 0.0;
  double duration_us = 0.0;
  bool kernel = false;  // one kernel (inside an op); false: an op (a library call, a phase)
};

// A traced training step: its index and its ops in the order they were enqueued.
struct StepTrace {
  std::int64_t step = 0;
  std::vector<TracedOp> ops;
};

// What was measured since the last take_summaries(), oldest first.
struct Summaries {
  std::vector<StepMetrics> steps;
  std::vector<StepStatistics> statistics;
  std::vector<StepTrace> traces;
};

// The tags of StepStatistics::tensors, the sample's names: per layer L (layer1, layer2 for the
// mlp; layer1 only for softmax) L/weights, L/biases; then per layer L/Wx_plus_b/pre_activations
// and L/activations (ReLU for layer1 of the mlp, identity otherwise).
std::vector<std::string> summary_tensor_names(const ModelLayout& layout);

class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string name() const = 0;
  // How a training step runs where a backend has a choice (the cuda backend: "fused" or "tiled",
  // see StepKernel); empty otherwise.
  virtual std::string step_kernel() const { return {}; }

  // The order of epoch `epoch` (kernels/common/sample_stream.h). EpochFeeder provides each epoch
  // before the first step that draws from it; a backend keeps the two newest.
  virtual void set_epoch_order(std::int64_t epoch, const std::vector<std::int32_t>& order) = 0;

  // One step on the next batch: forward, loss, backward, Adam. Asynchronous on a GPU.
  virtual void train_step() = 0;

  // Waits until queued work is done (a no-op where nothing is asynchronous).
  virtual void synchronize() {}

  // Mean cross-entropy of the last training step's batch (waits for the step).
  virtual float last_loss() = 0;

  // Evaluates on a held-out split (dropout off); the mean loss only when with_loss.
  virtual Evaluation evaluate(EvalSplit split, bool with_loss) = 0;
  // Number of test images classified correctly (dropout off).
  int evaluate_test() { return evaluate(EvalSplit::kTest, false).correct; }

  // Summaries. Once enabled, the scalars of every training step are kept (on the device for a GPU
  // backend, read back only by take_summaries) until taken.
  virtual void enable_step_metrics() = 0;
  // Statistics of the parameters and of the next training step's forward pass (its batch, its
  // dropout mask), computed now (asynchronously on a GPU) and kept until taken.
  virtual void record_statistics() = 0;
  // Waits; returns and forgets what was measured since the last call. Throws Error(kDiverged)
  // when a tensor held a NaN or an infinity.
  virtual Summaries take_summaries() = 0;

  // One training step like train_step(), run op by op and timed (device events on a GPU, read
  // back with the next take_summaries(); the host clock on the CPU): its StepTrace comes with the
  // summaries.
  virtual void traced_train_step() = 0;

  // Training steps taken so far (cheap; no copy of the parameters).
  virtual std::int64_t steps_taken() const = 0;

  virtual TrainState state() = 0;
  virtual void set_state(const TrainState& state) = 0;

  virtual std::unique_ptr<Stopwatch> stopwatch() = 0;
};

}  // namespace mnist
