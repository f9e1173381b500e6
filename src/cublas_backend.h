// The vendor baseline: the same step with cuBLAS for every product (bias broadcast and bias
// gradients included, as rank-1 products) and cuDNN for ReLU and softmax (forward and backward);
// our kernels only for what the libraries lack (batch gather, dropout mask, the NLL of the
// log-softmax, Adam, argmax). `--benchmark`
// compares the hand-written backend against this one.
#pragma once

#include <memory>

#include "backend.h"
#include "device_buffer.h"
#include "vendor.h"

namespace mnist {

class CublasBackend final : public Backend {
 public:
  CublasBackend(const TrainConfig& config, const MnistData& data,
                std::vector<float> initial_params);

  std::string name() const override { return "cublas"; }
  void set_epoch_order(std::int64_t epoch, const std::vector<std::int32_t>& order) override;
  void train_step() override;
  void synchronize() override;
  float last_loss() override;
  int evaluate_test() override;
  std::int64_t steps_taken() const override { return host_step_; }
  TrainState state() override;
  void set_state(const TrainState& state) override;
  std::unique_ptr<Stopwatch> stopwatch() override;

 private:
  void record_step(cudaStream_t stream);
  void record_eval(cudaStream_t stream);
  std::size_t batch_hidden_size() const;
  void bias_add(int rows, int n, const float* bias, float* y);
  void bias_grad(int rows, int n, const float* dz, float* grad);

  TrainConfig config_;
  ModelLayout layout_;
  int train_count_, test_count_;
  std::int64_t host_step_ = 0;
  CudaStream stream_;
  CublasHandle cublas_;
  CudnnHandle cudnn_;
  ReluDesc relu_;
  TensorDesc batch_hidden_, batch_classes_, test_hidden_, test_classes_;

  DeviceBuffer<std::uint8_t> train_images_, train_labels_, test_labels_;
  DeviceBuffer<float> test_x_;
  DeviceBuffer<std::int32_t> orders_;
  DeviceBuffer<std::int64_t> step_;
  DeviceBuffer<float> params_, grads_, adam_m_, adam_v_;
  DeviceBuffer<float> x_, z_, a_, h_, logits_, logp_, dlogp_, dlogits_, dh_, da_, dz_, row_loss_,
      loss_;
  DeviceBuffer<std::uint8_t> y_;
  DeviceBuffer<float> eval_hidden_, eval_logits_;
  DeviceBuffer<int> correct_;
  DeviceBuffer<float> ones_;  // for bias broadcast and bias gradients through cuBLAS
  CudaGraph step_graph_, eval_graph_;
};

}  // namespace mnist
