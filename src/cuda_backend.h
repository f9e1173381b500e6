// The product's backend: every op of the training step is one of our kernels (kernels/), the
// datasets live on the GPU as bytes, and a training step and an evaluation are each captured once
// as a CUDA graph and replayed. The step counter lives on the GPU, so a replay needs no input.
#pragma once

#include "backend.h"
#include "device_buffer.h"

namespace mnist {

class CudaBackend final : public Backend {
 public:
  CudaBackend(const TrainConfig& config, const MnistData& data, std::vector<float> initial_params);

  std::string name() const override { return "cuda"; }
  void set_epoch_order(std::int64_t epoch, const std::vector<std::int32_t>& order) override;
  void train_step() override;
  void synchronize() override;
  float last_loss() override;
  int evaluate_test() override;
  std::int64_t steps_taken() const override { return host_step_; }
  TrainState state() override;
  void set_state(const TrainState& state) override;
  std::unique_ptr<Stopwatch> stopwatch() override;

  // Device memory this backend holds, in bytes (for --benchmark's report).
  std::size_t device_bytes() const;

 private:
  void record_step(cudaStream_t stream);
  void record_eval(cudaStream_t stream);

  TrainConfig config_;
  ModelLayout layout_;
  int train_count_, test_count_;
  int forward_splits_;  // > 1: the hidden layer's product is split-K (see record_step)
  std::int64_t host_step_ = 0;
  CudaStream stream_;
  // The two weight-gradient products of a step are independent: the second runs on a side stream
  // (a parallel branch of the step's graph), forked from and joined back to stream_.
  CudaStream side_stream_;
  CudaEvent fork_{cudaEventDisableTiming}, join_{cudaEventDisableTiming};

  // Resident data, as bytes.
  DeviceBuffer<std::uint8_t> train_images_, train_labels_, test_images_, test_labels_;
  DeviceBuffer<std::int32_t> orders_;  // two epoch orders, slot e % 2
  DeviceBuffer<std::int64_t>
      step_;  // training steps taken; the graph's kernels read and advance it
  DeviceBuffer<std::int64_t> batch_step_;  // the step the current batch was drawn at

  // Parameters and Adam state, flat (see ModelLayout). No gradient buffer: Adam runs in the
  // weight-gradient kernels' epilogue.
  DeviceBuffer<float> params_, adam_m_, adam_v_;
  DeviceBuffer<float> split_scratch_;  // partial weight gradients (split-K), both layers

  // One batch.
  DeviceBuffer<float> forward_partials_;  // split-K partial products of the hidden layer
  DeviceBuffer<float> hidden_, logits_, dlogits_, dhidden_, row_loss_, loss_;
  DeviceBuffer<std::uint8_t> batch_labels_;
  DeviceBuffer<std::int32_t> batch_images_;

  // Evaluation scratch.
  DeviceBuffer<float> eval_out_;
  DeviceBuffer<int> correct_;

  CudaGraph step_graph_, eval_graph_;
};

}  // namespace mnist
