// The vendor baseline: the same step with cuBLAS for every product (bias broadcast and bias
// gradients included, as rank-1 products) and cuDNN for ReLU and softmax (forward and backward);
// our kernels only for what the libraries lack (kernels/baseline/: batch gather, dropout mask, the
// NLL of the log-softmax, Adam; and the argmax count). `--benchmark` compares the hand-written
// backend against this one.
#pragma once

#include <memory>

#include "gpu/gpu_backend_base.h"
#include "gpu/vendor.h"

namespace mnist {

class CublasBackend final : public GpuBackendBase {
 public:
  CublasBackend(const TrainConfig& config, const MnistData& data,
                std::vector<float> initial_params);

  std::string name() const override { return backend_name(BackendKind::kCublas); }

 private:
  void record_step(cudaStream_t stream) override;
  void record_eval(cudaStream_t stream, EvalSplit split, float* row_loss) override;
  std::size_t batch_hidden_size() const;
  void bias_add(int rows, int n, const float* bias, float* y);
  void bias_grad(int rows, int n, const float* dz, float* grad);

  CublasHandle cublas_;
  CudnnHandle cudnn_;
  ReluDesc relu_;
  TensorDesc batch_hidden_, batch_classes_, test_hidden_, validation_hidden_;

  DeviceBuffer<std::uint8_t> test_labels_, validation_labels_;
  DeviceBuffer<float> test_x_, validation_x_;  // the held-out images as floats in [0,1]
  DeviceBuffer<float> grads_;
  DeviceBuffer<float> x_, z_, a_, h_, logits_, logp_, dlogp_, dlogits_, dh_, da_, dz_;
  DeviceBuffer<std::uint8_t> y_;
  DeviceBuffer<float> eval_hidden_, eval_logits_;
  DeviceBuffer<float> ones_;  // for bias broadcast and bias gradients through cuBLAS
};

}  // namespace mnist
