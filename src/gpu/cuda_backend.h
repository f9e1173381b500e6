// The product's backend: every op of the training step is one of our kernels (kernels/), the
// datasets live on the GPU as bytes, and a training step and an evaluation are each captured once
// as a CUDA graph and replayed (GpuBackendBase).
#pragma once

#include <optional>

#include "gpu/gpu_backend_base.h"
#include "kernels/fused_step.h"
#include "kernels/gemm.h"

namespace mnist {

// A data-parallel replica's rows of each step's global batch (DataParallelBackend).
struct Shard {
  int global_batch = 0;  // TrainConfig::batch_size of the run
  int row_offset = 0;    // the replica's first row in it
  int rows = 0;          // how many
};

// The shard of `rank` among `ranks` replicas: the global batch split as evenly as it goes (the
// first batch % ranks replicas take one row more). Every replica gets at least one row when
// global_batch >= ranks.
Shard shard_of(int global_batch, int rank, int ranks);

class CudaBackend final : public GpuBackendBase {
 public:
  CudaBackend(const TrainConfig& config, const MnistData& data, std::vector<float> initial_params);
  // A data-parallel replica (config.batch_size is the global batch): it trains only through
  // enqueue_gradients / enqueue_apply, its gradient scaled by shard.rows / global batch.
  CudaBackend(const TrainConfig& config, const MnistData& data, std::vector<float> initial_params,
              const Shard& shard);

  std::string name() const override { return backend_name(BackendKind::kCuda); }
  std::string step_kernel() const override { return fused_plan_ ? "fused" : "tiled"; }

 private:
  // The step, in the order of the CPU reference (train/cpu_backend.cpp): record_step runs
  // forward, then loss_and_backward, then update (tiled), or all of it as one kernel (fused).
  void record_step(cudaStream_t stream) override;
  void fused_step(cudaStream_t stream);
  // The hidden layer (mlp) or the logits (softmax) of the batch gathered from the resident bytes.
  void forward(cudaStream_t stream);
  // Loss, its gradient, and (mlp) the gradient back into the hidden layer.
  void loss_and_backward(cudaStream_t stream);
  // Weight gradients of every layer, with Adam applied in their epilogue.
  void update(cudaStream_t stream);
  kernels::AdamUpdate adam_for(const Layer& layer, float*& split_scratch);

  void record_eval(cudaStream_t stream, EvalSplit split, float* row_loss) override;
  // A replica's halves: forward and loss_and_backward, then the weight gradients into gradient_
  // (replica_gradients); then Adam over all parameters from the all-reduced gradient_.
  void record_gradients(cudaStream_t stream) override;
  void record_apply(cudaStream_t stream) override;
  void replica_gradients(cudaStream_t stream);

  bool replica_ = false;
  // Set when the step is kernels/fused_step.h's one kernel: how it runs on this GPU.
  std::optional<kernels::FusedPlan> fused_plan_;
  DeviceBuffer<float> fused_scratch_;  // its exchange between blocks
  int forward_splits_;                 // > 1: the hidden layer's product is split-K (see forward,
                                       // loss_and_backward)
  // The two weight-gradient products of a step are independent: the second runs on a side stream
  // (a parallel branch of the step's graph), forked from and joined back to stream_.
  CudaStream side_stream_;
  CudaEvent fork_{cudaEventDisableTiming}, join_{cudaEventDisableTiming};

  // Resident held-out data, as bytes (the training set is in the base).
  DeviceBuffer<std::uint8_t> test_images_, test_labels_, validation_images_, validation_labels_;
  DeviceBuffer<std::int64_t> batch_step_;  // the step the current batch was drawn at

  // No gradient buffer: Adam runs in the weight-gradient kernels' epilogue (except for a replica,
  // whose gradient is all-reduced first: GpuBackendBase::gradient_).
  DeviceBuffer<float> split_scratch_;  // partial weight gradients (split-K), both layers

  // One batch.
  DeviceBuffer<float> forward_partials_;  // split-K partial products of the hidden layer
  DeviceBuffer<float> hidden_, logits_, dlogits_, dhidden_;
  DeviceBuffer<std::uint8_t> batch_labels_;
  DeviceBuffer<std::int32_t> batch_images_;

  // Evaluation scratch.
  DeviceBuffer<float> eval_out_;
};

}  // namespace mnist
