// The readable reference: every op as plain loops over floats. Ground truth for the GPU tests.
#pragma once

#include <array>

#include "kernels/common/sample_stream.h"
#include "train/backend.h"

namespace mnist {

class CpuBackend final : public Backend {
 public:
  CpuBackend(const TrainConfig& config, const MnistData& data, std::vector<float> initial_params);

  std::string name() const override { return "cpu"; }
  void set_epoch_order(std::int64_t epoch, const std::vector<std::int32_t>& order) override;
  void train_step() override;
  float last_loss() override { return last_loss_; }
  Evaluation evaluate(EvalSplit split, bool with_loss) override;
  std::int64_t steps_taken() const override { return state_.step; }
  TrainState state() override { return state_; }
  void set_state(const TrainState& state) override {
    state_ = state;
    pending_ = Summaries{};  // measured on the old state's steps
  }
  std::unique_ptr<Stopwatch> stopwatch() override;

  void enable_step_metrics() override { metrics_enabled_ = true; }
  void record_statistics() override;
  Summaries take_summaries() override;
  void traced_train_step() override;

  // Pieces of the step, public for the gradient checks.
  // Gathers the batch of step `step` into x (B x 784, scaled to [0,1]) and its labels.
  void gather_batch(std::int64_t step, std::vector<float>& x,
                    std::vector<std::uint8_t>& labels) const;
  // Forward, loss and backward on a given batch with the given parameters: fills grad (same layout
  // as params) and returns the mean loss. `step` seeds the dropout mask. With `correct`, also
  // counts the rows whose logits' argmax (first maximum) is the label.
  float loss_and_gradient(const std::vector<float>& params, const std::vector<float>& x,
                          const std::vector<std::uint8_t>& labels, std::int64_t step,
                          std::vector<float>* grad, int* correct = nullptr) const;

 private:
  const std::vector<std::int32_t>& order_for(std::int64_t epoch) const;
  // hidden = dropout(relu(hidden)) with the mask of `step` (the mlp's hidden layer).
  void relu_dropout(std::vector<float>& hidden, std::int64_t step) const;
  // One step; with a trace, times its phases on the host clock.
  void step(std::vector<TracedOp>* trace);

  TrainConfig config_;
  ModelLayout layout_;
  const MnistData& data_;
  TrainState state_;
  std::array<std::int64_t, kEpochSlots> order_epoch_{-1, -1};
  std::array<std::vector<std::int32_t>, kEpochSlots> orders_;
  float last_loss_ = 0.0f;
  bool metrics_enabled_ = false;
  Summaries pending_;
};

// Reference ops (row-major, float), shared with the GPU tests' expectations.
namespace cpu {
// C[M,N] = A[M,K] * B[K,N] + bias[N]
void matmul_bias(const float* a, const float* b, const float* bias, float* c, int m, int k, int n);
// C[K,N] = A[M,K]^T * B[M,N]
void matmul_at_b(const float* a, const float* b, float* c, int m, int k, int n);
// C[M,K] = A[M,N] * B[K,N]^T
void matmul_a_bt(const float* a, const float* b, float* c, int m, int n, int k);
// Mean softmax cross-entropy over rows; writes dlogits = (softmax - onehot) / rows.
float softmax_xent(const float* logits, const std::uint8_t* labels, float* dlogits, int rows,
                   int classes);
// TF Adam over n values, t = step number starting at 1.
void adam(float* p, const float* g, float* m, float* v, std::size_t n, float lr, std::int64_t t);
}  // namespace cpu

}  // namespace mnist
