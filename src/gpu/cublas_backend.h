// The vendor baseline, written the way a cuBLAS expert would: every product a cuBLASLt matmul with
// the operands stored in the compute format (fp32, fp32 read as TF32, or bf16 with an fp32 master
// copy of the parameters for Adam) and the bias, ReLU and bias gradients fused into cuBLASLt's
// epilogues; our kernels only for what cuBLASLt lacks (kernels/baseline/: batch gather, dropout,
// softmax cross-entropy, Adam; and the evaluation's argmax count). Each step is one CUDA graph, as
// for our backend. `--benchmark` compares the hand-written backend against this one.
//
// One step (mlp; the softmax model has only the output layer), row-major, B rows:
//   gather_batch      x[B, 784] = the batch's pixels / 255
//   cublasLtMatmul    a = relu(x W1 + b1)                    CUBLASLT_EPILOGUE_RELU_BIAS
//   dropout_forward   h = a * mask / keep                    (skipped at keep 1: h is a)
//   cublasLtMatmul    logits = h W2 + b2                     CUBLASLT_EPILOGUE_BIAS
//   softmax_nll       loss, hits, dlogits; counts the step
//   cublasLtMatmul    dW2 = h^T dlogits, db2                 CUBLASLT_EPILOGUE_BGRADA
//   cublasLtMatmul    dh = dlogits W2^T
//   relu_dropout_backward  dz = h > 0 ? dh / keep : 0
//   cublasLtMatmul    dW1 = x^T dz, db1                      CUBLASLT_EPILOGUE_BGRADA
//   adam_update       every parameter (and their bf16 copy)
// Dropout sits between the ReLU and the next product, so the backward needs the ReLU's mask and
// dropout's together: h > 0 is exactly that, which is why dz comes from h in one element-wise
// kernel rather than from cuBLASLt's DRELU_BGRAD epilogue (whose bit mask holds the ReLU's alone,
// in a layout cuBLASLt does not document for others to combine with), and db1 comes from dW1's
// product instead.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "gpu/gpu_backend_base.h"
#include "gpu/vendor.h"

namespace mnist {

class CublasBackend final : public GpuBackendBase {
 public:
  CublasBackend(const TrainConfig& config, const MnistData& data,
                std::vector<float> initial_params);

  std::string name() const override { return backend_name(BackendKind::kCublas); }
  // Sets the state, then the bf16 copy of the parameters from it (--precision bf16).
  void set_state(const TrainState& state) override;

 private:
  // A device matrix of `count` values in the products' storage (fp32, or bf16 for bf16).
  DeviceBuffer<std::uint8_t> operands(std::size_t count) const;
  LtMatmul plan(const LtProduct& product) const;
  void plan_products(const MnistData& data);
  void refresh_bf16_parameters();
  void record_step(cudaStream_t stream) override;
  void record_eval(cudaStream_t stream, EvalSplit split, float* row_loss) override;

  bool bf16_, mlp_, dropout_;
  CublasLtHandle lt_;
  DeviceBuffer<std::uint8_t> workspace_;
  DeviceBuffer<__nv_bfloat16> params_bf16_;  // bf16: the products' copy of params_
  DeviceBuffer<float> grads_, logits_, dh_, eval_logits_;
  DeviceBuffer<std::uint8_t> y_, test_labels_, validation_labels_;
  // In the products' storage: the batch, the hidden layer before and after dropout, the output
  // and hidden gradients the backward products read, the held-out images and their hidden layer.
  DeviceBuffer<std::uint8_t> x_, a_, h_, dlogits_, dz_, test_x_, validation_x_, eval_hidden_;
  LtMatmul forward_hidden_, forward_logits_, output_grad_, hidden_grad_, input_grad_;
  LtMatmul eval_hidden_product_[2], eval_logits_product_[2];  // [test, validation]
};

}  // namespace mnist
