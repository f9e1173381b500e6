// What both GPU backends share: the stream, the epoch orders, the step counter, the parameters
// and Adam state on the device, the training set as bytes, the batch loss, the evaluation counts,
// the CUDA graphs (one training step, one evaluation per split) that each backend records its own
// way, and the summaries: per-step scalars kept in a ring on the device, tensor statistics reduced
// on the device (kernels/tensor_stats.h), and step traces timed with device events. The step
// counter lives on the GPU, so a graph replay needs no input.
#pragma once

#include <memory>

#include "gpu/cuda_resources.h"
#include "train/backend.h"

namespace mnist {

class StepTracer;

class GpuBackendBase : public Backend {
 public:
  ~GpuBackendBase() override;

  void set_epoch_order(std::int64_t epoch, const std::vector<std::int32_t>& order) override;
  void train_step() override;
  void synchronize() override;
  float last_loss() override;
  Evaluation evaluate(EvalSplit split, bool with_loss) override;
  std::int64_t steps_taken() const override { return host_step_; }
  TrainState state() override;
  void set_state(const TrainState& state) override;
  std::unique_ptr<Stopwatch> stopwatch() override;

  void enable_step_metrics() override;
  void record_statistics() override;
  Summaries take_summaries() override;
  void traced_train_step() override;

  // A data-parallel replica's step, in two halves around the all-reduce of gradient()
  // (DataParallelBackend; only a backend built for a shard has them). The first enqueues forward,
  // loss and backward and leaves the replica's share of the batch's gradient in gradient(); the
  // second applies Adam to it and counts the step. Each is a CUDA graph unless --cuda_graphs off,
  // or enqueued op by op between begin_traced_step and end_traced_step.
  void enqueue_gradients();
  void enqueue_apply();
  float* gradient() const { return gradient_.get(); }
  cudaStream_t stream() const { return stream_.get(); }
  // A traced step of a replica: the halves and whatever runs between them through traced_op (the
  // all-reduce) are timed, and the trace comes with the summaries like traced_train_step's.
  void begin_traced_step();
  template <class Enqueue>
  void traced_op(const char* name, Enqueue&& enqueue) {
    op(name, stream_.get(), enqueue);
  }
  void end_traced_step();
  // A traced step that failed half-way: its tracer (with events never recorded) is dropped.
  void abandon_traced_step();
  // Whether the next step or statistics pass reads its device buffers back first (a plain stream
  // synchronisation: DataParallelBackend drains the replicas through its watched wait before).
  bool holds_full_buffers() const;

 protected:
  GpuBackendBase(const TrainConfig& config, const MnistData& data,
                 const std::vector<float>& initial_params);

  // Enqueue one training step (forward, loss, backward, Adam: reads and advances step_ by the
  // step convention of kernels/adam_rule.cuh, leaves per-row losses in row_loss_ and hits in
  // row_correct_) on `stream`; recorded once into a graph unless --cuda_graphs off. Each op goes
  // through op() so that a traced step can time it. Somewhere after the loss, on a stream that
  // joins `stream` by the step's end, it calls record_step_metrics.
  virtual void record_step(cudaStream_t stream) = 0;
  // With step metrics enabled: the step's loss and accuracy into the device ring (a one-block
  // kernel; best on a stream where it overlaps the weight updates).
  void record_step_metrics(cudaStream_t stream);
  // Enqueue one evaluation of `split`: adds its correctly classified images to *correct_ (zeroed
  // before) and, with a row_loss, writes each image's cross-entropy there.
  virtual void record_eval(cudaStream_t stream, EvalSplit split, float* row_loss) = 0;
  // The halves of a replica's step (enqueue_gradients, enqueue_apply); only shard backends.
  virtual void record_gradients(cudaStream_t stream);
  virtual void record_apply(cudaStream_t stream);

  // One op of the step: runs `enqueue` (which enqueues work on `stream`); in a traced step the op
  // and every kernel launch() makes inside it are bracketed with device events.
  template <class Enqueue>
  void op(const char* name, cudaStream_t stream, Enqueue&& enqueue) {
    begin_op(name, stream);
    enqueue();
    end_op(stream);
  }

  int split_count(EvalSplit split) const {
    return split == EvalSplit::kTest ? test_count_ : validation_count_;
  }

  TrainConfig config_;  // a replica's batch_size is its shard's rows
  ModelLayout layout_;
  // The global batch and this backend's first row in it: config_.batch_size and 0 unless it is a
  // data-parallel replica (then the sample stream and the dropout masks are the global batch's).
  int global_batch_, row_offset_ = 0;
  DeviceBuffer<float> gradient_;  // a replica's [W; b] gradients, laid out like params_
  int train_count_, test_count_, validation_count_;
  CudaStream stream_;
  DeviceBuffer<std::uint8_t> train_images_, train_labels_;  // resident training set, as bytes
  DeviceBuffer<std::int32_t> orders_;  // the epoch slots (kernels/common/sample_stream.h)
  DeviceBuffer<std::int64_t> step_;    // training steps taken (TrainState::step)
  DeviceBuffer<float> params_, adam_m_, adam_v_;  // flat (see ModelLayout)
  DeviceBuffer<float> row_loss_, loss_;
  DeviceBuffer<std::uint8_t> row_correct_;
  DeviceBuffer<int> correct_;

 private:
  void begin_op(const char* name, cudaStream_t stream);
  void end_op(cudaStream_t stream);
  void collect_pending();  // moves what the device holds into pending_ (waits)
  // The statistics pass (record_statistics), writing the slots at `slots`.
  void enqueue_statistics(cudaStream_t stream, double* slots);

  std::int64_t host_step_ = 0;
  CudaGraph step_graph_, eval_graphs_[2][2];  // [split][with loss]
  CudaGraph gradients_graph_, apply_graph_;   // a replica's halves
  std::int64_t traced_step_ = 0;
  DeviceBuffer<float> eval_row_loss_;

  // Summaries.
  bool metrics_enabled_ = false;
  DeviceBuffer<float2> metrics_;        // ring of kMetricsCapacity per-step {loss, accuracy}
  std::int64_t metrics_from_ = 0;       // the first step whose metrics are still on the device
  DeviceBuffer<double> bucket_limits_;  // TF's default histogram edges
  DeviceBuffer<double> stats_slots_, stats_scratch_;
  std::vector<std::int64_t> stats_steps_;  // the steps of the slots in use, in order
  // Statistics passes the device keeps before a forced read-back (--summary_every 1 with the
  // default --eval_every needs 9), and their graphs, one per slot, recorded at its first use.
  static constexpr int kStatsCapacity = 16;
  CudaGraph stats_graphs_[kStatsCapacity];
  DeviceBuffer<float> summary_partials_, summary_pre_, summary_hidden_, summary_logits_;
  Summaries pending_;                   // collected from the device, not yet taken
  std::unique_ptr<StepTracer> tracer_;  // set only while traced_train_step enqueues
  // Traced steps whose events are still to be read (at the next collect_pending), with their step.
  std::vector<std::pair<std::int64_t, std::unique_ptr<StepTracer>>> pending_traces_;
  PinnedBuffer<float2> metrics_host_;  // read-back staging
  PinnedBuffer<double> stats_host_;
};

}  // namespace mnist
