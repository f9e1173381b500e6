// What both GPU backends share: the stream, the epoch orders, the step counter, the parameters
// and Adam state on the device, the batch loss, the test-set count, and the two CUDA graphs (one
// training step, one evaluation) that each backend records its own way. The step counter lives on
// the GPU, so a graph replay needs no input.
#pragma once

#include "gpu/cuda_resources.h"
#include "train/backend.h"

namespace mnist {

class GpuBackendBase : public Backend {
 public:
  void set_epoch_order(std::int64_t epoch, const std::vector<std::int32_t>& order) override;
  void train_step() override;
  void synchronize() override;
  float last_loss() override;
  int evaluate_test() override;
  std::int64_t steps_taken() const override { return host_step_; }
  TrainState state() override;
  void set_state(const TrainState& state) override;
  std::unique_ptr<Stopwatch> stopwatch() override;

 protected:
  GpuBackendBase(const TrainConfig& config, const MnistData& data,
                 const std::vector<float>& initial_params);

  // Enqueue one training step (forward, loss, backward, Adam: reads and advances step_ by the
  // step convention of kernels/adam_rule.cuh, leaves per-row losses in row_loss_) or one
  // evaluation (leaves the number of correct test images in correct_) on `stream`; recorded once
  // into a graph unless --cuda_graphs off.
  virtual void record_step(cudaStream_t stream) = 0;
  virtual void record_eval(cudaStream_t stream) = 0;

  TrainConfig config_;
  ModelLayout layout_;
  int train_count_, test_count_;
  CudaStream stream_;
  DeviceBuffer<std::int32_t> orders_;  // the epoch slots (kernels/common/sample_stream.h)
  DeviceBuffer<std::int64_t> step_;    // training steps taken (TrainState::step)
  DeviceBuffer<float> params_, adam_m_, adam_v_;  // flat (see ModelLayout)
  DeviceBuffer<float> row_loss_, loss_;
  DeviceBuffer<int> correct_;

 private:
  std::int64_t host_step_ = 0;
  CudaGraph step_graph_, eval_graph_;
};

}  // namespace mnist
