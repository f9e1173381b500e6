// The product's backend: every op of the training step is one of our kernels (kernels/), the
// datasets live on the GPU as bytes, and a training step and an evaluation are each captured once
// as a CUDA graph and replayed (GpuBackendBase).
#pragma once

#include "gpu/gpu_backend_base.h"
#include "kernels/gemm.h"

namespace mnist {

class CudaBackend final : public GpuBackendBase {
 public:
  CudaBackend(const TrainConfig& config, const MnistData& data, std::vector<float> initial_params);

  std::string name() const override { return backend_name(BackendKind::kCuda); }

 private:
  // The step, in the order of the CPU reference (train/cpu_backend.cpp): record_step runs
  // forward, then loss_and_backward, then update.
  void record_step(cudaStream_t stream) override;
  // The hidden layer (mlp) or the logits (softmax) of the batch gathered from the resident bytes.
  void forward(cudaStream_t stream);
  // Loss, its gradient, and (mlp) the gradient back into the hidden layer.
  void loss_and_backward(cudaStream_t stream);
  // Weight gradients of every layer, with Adam applied in their epilogue.
  void update(cudaStream_t stream);
  kernels::AdamUpdate adam_for(const Layer& layer, float*& split_scratch);

  void record_eval(cudaStream_t stream, EvalSplit split, float* row_loss) override;

  int forward_splits_;  // > 1: the hidden layer's product is split-K (see forward,
                        // loss_and_backward)
  // The two weight-gradient products of a step are independent: the second runs on a side stream
  // (a parallel branch of the step's graph), forked from and joined back to stream_.
  CudaStream side_stream_;
  CudaEvent fork_{cudaEventDisableTiming}, join_{cudaEventDisableTiming};

  // Resident held-out data, as bytes (the training set is in the base).
  DeviceBuffer<std::uint8_t> test_images_, test_labels_, validation_images_, validation_labels_;
  DeviceBuffer<std::int64_t> batch_step_;  // the step the current batch was drawn at

  // No gradient buffer: Adam runs in the weight-gradient kernels' epilogue.
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
