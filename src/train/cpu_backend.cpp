#include "train/cpu_backend.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <stdexcept>

#include "kernels/common/philox.h"
#include "kernels/common/sample_stream.h"

namespace mnist {
namespace cpu {

void matmul_bias(const float* a, const float* b, const float* bias, float* c, int m, int k, int n) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < m; ++i) {
    float* row = c + std::size_t(i) * n;
    for (int j = 0; j < n; ++j) row[j] = bias ? bias[j] : 0.0f;
    for (int p = 0; p < k; ++p) {
      const float x = a[std::size_t(i) * k + p];
      if (x == 0.0f) continue;  // MNIST pixels are mostly zero
      const float* brow = b + std::size_t(p) * n;
      for (int j = 0; j < n; ++j) row[j] += x * brow[j];
    }
  }
}

void matmul_at_b(const float* a, const float* b, float* c, int m, int k, int n) {
#pragma omp parallel for schedule(static)
  for (int p = 0; p < k; ++p) {
    float* row = c + std::size_t(p) * n;
    std::fill(row, row + n, 0.0f);
    for (int i = 0; i < m; ++i) {
      const float x = a[std::size_t(i) * k + p];
      if (x == 0.0f) continue;
      const float* brow = b + std::size_t(i) * n;
      for (int j = 0; j < n; ++j) row[j] += x * brow[j];
    }
  }
}

void matmul_a_bt(const float* a, const float* b, float* c, int m, int n, int k) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < m; ++i) {
    for (int p = 0; p < k; ++p) {
      float sum = 0.0f;
      for (int j = 0; j < n; ++j) sum += a[std::size_t(i) * n + j] * b[std::size_t(p) * n + j];
      c[std::size_t(i) * k + p] = sum;
    }
  }
}

float softmax_xent(const float* logits, const std::uint8_t* labels, float* dlogits, int rows,
                   int classes) {
  double total = 0.0;
  for (int i = 0; i < rows; ++i) {
    const float* z = logits + std::size_t(i) * classes;
    const float zmax = *std::max_element(z, z + classes);
    float sum = 0.0f;
    for (int j = 0; j < classes; ++j) sum += std::exp(z[j] - zmax);
    const float log_sum = std::log(sum);
    total += log_sum - (z[labels[i]] - zmax);
    for (int j = 0; j < classes; ++j) {
      const float p = std::exp(z[j] - zmax - log_sum);
      dlogits[std::size_t(i) * classes + j] = (p - (j == labels[i] ? 1.0f : 0.0f)) / float(rows);
    }
  }
  return static_cast<float>(total / rows);
}

void adam(float* p, const float* g, float* m, float* v, std::size_t n, float lr, std::int64_t t) {
  const float lr_t = lr * std::sqrt(1.0f - std::pow(kAdamBeta2, float(t))) /
                     (1.0f - std::pow(kAdamBeta1, float(t)));
  for (std::size_t i = 0; i < n; ++i) {
    m[i] = kAdamBeta1 * m[i] + (1.0f - kAdamBeta1) * g[i];
    v[i] = kAdamBeta2 * v[i] + (1.0f - kAdamBeta2) * g[i] * g[i];
    p[i] -= lr_t * m[i] / (std::sqrt(v[i]) + kAdamEpsilon);
  }
}

}  // namespace cpu

CpuBackend::CpuBackend(const TrainConfig& config, const MnistData& data,
                       std::vector<float> initial_params)
    : config_(config), layout_(make_layout(config.model, config.hidden_units)), data_(data) {
  if (initial_params.size() != layout_.total)
    throw std::invalid_argument("CpuBackend: parameter count");
  state_.params = std::move(initial_params);
  state_.adam_m.assign(layout_.total, 0.0f);
  state_.adam_v.assign(layout_.total, 0.0f);
}

void CpuBackend::set_epoch_order(std::int64_t epoch, const std::vector<std::int32_t>& order) {
  orders_[epoch_slot(epoch)] = order;
  order_epoch_[epoch_slot(epoch)] = epoch;
}

const std::vector<std::int32_t>& CpuBackend::order_for(std::int64_t epoch) const {
  if (order_epoch_[epoch_slot(epoch)] != epoch) throw std::logic_error("epoch order not provided");
  return orders_[epoch_slot(epoch)];
}

void CpuBackend::gather_batch(std::int64_t step, std::vector<float>& x,
                              std::vector<std::uint8_t>& labels) const {
  const int batch = config_.batch_size;
  x.resize(std::size_t(batch) * kImagePixels);
  labels.resize(batch);
  for (int r = 0; r < batch; ++r) {
    const StreamPosition pos = stream_position(step, batch, r, data_.train.count);
    const int sample = order_for(pos.epoch)[pos.index];
    const std::uint8_t* pixels = data_.train.images.data() + std::size_t(sample) * kImagePixels;
    for (int k = 0; k < kImagePixels; ++k)
      x[std::size_t(r) * kImagePixels + k] = pixels[k] * kPixelScale;
    labels[r] = data_.train.labels[sample];
  }
}

void CpuBackend::relu_dropout(std::vector<float>& hidden, std::int64_t step) const {
  const float keep = config_.keep_prob;
  for (std::size_t i = 0; i < hidden.size(); ++i) {
    const float u = keep >= 1.0f ? 0.0f : dropout_uniform(config_.seed, step, std::uint32_t(i));
    hidden[i] = dropout_keep_scaled(std::max(hidden[i], 0.0f), u, keep);
  }
}

namespace {

// Rows of `logits` (rows x kClasses) whose first maximum is the label.
int count_hits(const std::vector<float>& logits, const std::uint8_t* labels, int rows) {
  int hits = 0;
  for (int r = 0; r < rows; ++r) {
    const float* z = logits.data() + std::size_t(r) * kClasses;
    hits += static_cast<int>(std::max_element(z, z + kClasses) - z) == labels[r];
  }
  return hits;
}

}  // namespace

float CpuBackend::loss_and_gradient(const std::vector<float>& params, const std::vector<float>& x,
                                    const std::vector<std::uint8_t>& labels, std::int64_t step,
                                    std::vector<float>* grad, int* correct) const {
  const int batch = static_cast<int>(labels.size());
  const float* p = params.data();
  const Layer& out = layout_.layers.back();
  // Forward: hidden = dropout(relu(x W1 + b1)) (mlp only), logits = hidden W2 + b2.
  std::vector<float> hidden;  // post-ReLU, post-dropout activations of the mlp's hidden layer
  const float* last_input = x.data();
  if (layout_.layers.size() == 2) {
    const Layer& l1 = layout_.layers[0];
    hidden.resize(std::size_t(batch) * l1.out);
    cpu::matmul_bias(x.data(), p + l1.w, p + l1.b, hidden.data(), batch, l1.in, l1.out);
    relu_dropout(hidden, step);
    last_input = hidden.data();
  }
  std::vector<float> logits(std::size_t(batch) * out.out);
  cpu::matmul_bias(last_input, p + out.w, p + out.b, logits.data(), batch, out.in, out.out);
  if (correct) *correct = count_hits(logits, labels.data(), batch);
  // Loss: mean softmax cross-entropy, and its gradient dlogits.
  std::vector<float> dlogits(logits.size());
  const float loss =
      cpu::softmax_xent(logits.data(), labels.data(), dlogits.data(), batch, out.out);
  if (!grad) return loss;

  // Backward: [dW2; db2] = [hidden; 1]^T dlogits, then through W2, dropout and ReLU to
  // [dW1; db1] = [x; 1]^T dz.
  grad->assign(layout_.total, 0.0f);
  float* g = grad->data();
  cpu::matmul_at_b(last_input, dlogits.data(), g + out.w, batch, out.in, out.out);
  for (int r = 0; r < batch; ++r)
    for (int j = 0; j < out.out; ++j) g[out.b + j] += dlogits[std::size_t(r) * out.out + j];
  if (layout_.layers.size() == 2) {
    const Layer& l1 = layout_.layers[0];
    std::vector<float> dz(hidden.size());
    cpu::matmul_a_bt(dlogits.data(), p + out.w, dz.data(), batch, out.out, l1.out);
    // d(relu(z) * mask / keep)/dz is 1/keep exactly where the output is positive.
    for (std::size_t i = 0; i < dz.size(); ++i)
      dz[i] = hidden[i] > 0.0f ? dz[i] / config_.keep_prob : 0.0f;
    cpu::matmul_at_b(x.data(), dz.data(), g + l1.w, batch, l1.in, l1.out);
    for (int r = 0; r < batch; ++r)
      for (int j = 0; j < l1.out; ++j) g[l1.b + j] += dz[std::size_t(r) * l1.out + j];
  }
  return loss;
}

void CpuBackend::train_step() { step(nullptr); }

void CpuBackend::traced_train_step() {
  StepTrace trace{state_.step, {}};
  step(&trace.ops);
  pending_.traces.push_back(std::move(trace));
}

void CpuBackend::step(std::vector<TracedOp>* trace) {
  using Clock = std::chrono::steady_clock;
  const auto origin = Clock::now();
  auto t = origin;
  auto phase = [&](const char* name) {  // closes the phase that ran since the last call
    if (!trace) return;
    const auto now = Clock::now();
    const auto us = [&](Clock::time_point p) {
      return std::chrono::duration<double, std::micro>(p - origin).count();
    };
    trace->push_back(TracedOp{name, 0, us(t), us(now) - us(t)});
    t = now;
  };
  std::vector<float> x, grad;
  std::vector<std::uint8_t> labels;
  gather_batch(state_.step, x, labels);
  phase("gather_batch");
  // Forward, loss and backward (the step's index draws the dropout mask) ...
  int correct = 0;
  last_loss_ = loss_and_gradient(state_.params, x, labels, state_.step, &grad, &correct);
  phase("forward, loss and backward");
  if (metrics_enabled_) {
    pending_.steps.push_back(
        StepMetrics{state_.step, last_loss_, float(correct) / float(config_.batch_size)});
  }
  // ... then the step is counted and Adam runs with t = the count (kernels/adam_rule.cuh).
  state_.step += 1;
  cpu::adam(state_.params.data(), grad.data(), state_.adam_m.data(), state_.adam_v.data(),
            layout_.total, config_.learning_rate, state_.step);
  phase("adam");
}

void CpuBackend::record_statistics() {
  const float* p = state_.params.data();
  StepStatistics stats{state_.step, {}};
  for (const Layer& l : layout_.layers) {
    stats.tensors.push_back(make_histogram(p + l.w, std::size_t(l.in) * l.out));
    stats.tensors.push_back(make_histogram(p + l.b, std::size_t(l.out)));
  }
  // The next step's forward pass: its batch, its parameters, its dropout mask.
  std::vector<float> x;
  std::vector<std::uint8_t> labels;
  gather_batch(state_.step, x, labels);
  const int batch = config_.batch_size;
  const Layer& first = layout_.layers.front();
  std::vector<float> pre(std::size_t(batch) * first.out);
  cpu::matmul_bias(x.data(), p + first.w, p + first.b, pre.data(), batch, first.in, first.out);
  stats.tensors.push_back(make_histogram(pre));
  if (layout_.layers.size() == 2) {
    std::vector<float> hidden = pre;
    for (float& v : hidden) v = std::max(v, 0.0f);
    stats.tensors.push_back(make_histogram(hidden));
    hidden = pre;
    relu_dropout(hidden, state_.step);
    const Layer& out = layout_.layers[1];
    std::vector<float> logits(std::size_t(batch) * out.out);
    cpu::matmul_bias(hidden.data(), p + out.w, p + out.b, logits.data(), batch, out.in, out.out);
    stats.tensors.push_back(make_histogram(logits));
  }
  stats.tensors.push_back(stats.tensors.back());  // the last layer's activations: identity
  pending_.statistics.push_back(std::move(stats));
}

Summaries CpuBackend::take_summaries() {
  Summaries out = std::move(pending_);
  pending_ = Summaries{};
  return out;
}

namespace {
class HostStopwatch final : public Stopwatch {
 public:
  void mark() override { marks_.push_back(std::chrono::steady_clock::now()); }
  std::vector<double> intervals_us() override {
    std::vector<double> out;
    for (std::size_t i = 1; i < marks_.size(); ++i) {
      out.push_back(std::chrono::duration<double, std::micro>(marks_[i] - marks_[i - 1]).count());
    }
    return out;
  }

 private:
  std::vector<std::chrono::steady_clock::time_point> marks_;
};
}  // namespace

std::unique_ptr<Stopwatch> CpuBackend::stopwatch() { return std::make_unique<HostStopwatch>(); }

Evaluation CpuBackend::evaluate(EvalSplit split, bool with_loss) {
  const Dataset& test = split == EvalSplit::kTest ? data_.test : data_.validation;
  constexpr int kChunk = 1000;  // bounds the temporary activations
  int correct = 0;
  double loss_sum = 0.0;
  std::vector<float> x, act, logits;
  for (int begin = 0; begin < test.count; begin += kChunk) {
    const int rows = std::min(kChunk, test.count - begin);
    x.resize(std::size_t(rows) * kImagePixels);
    for (std::size_t i = 0; i < x.size(); ++i)
      x[i] = test.images[std::size_t(begin) * kImagePixels + i] * kPixelScale;
    const float* input = x.data();
    for (const Layer& l : layout_.layers) {
      std::vector<float>& outv = (&l == &layout_.layers.back()) ? logits : act;
      outv.resize(std::size_t(rows) * l.out);
      cpu::matmul_bias(input, state_.params.data() + l.w, state_.params.data() + l.b, outv.data(),
                       rows, l.in, l.out);
      if (&l != &layout_.layers.back()) {
        for (float& v : outv) v = std::max(v, 0.0f);
      }
      input = outv.data();
    }
    correct += count_hits(logits, test.labels.data() + begin, rows);
    if (!with_loss) continue;
    for (int r = 0; r < rows; ++r) {
      const float* z = logits.data() + std::size_t(r) * kClasses;
      const float zmax = *std::max_element(z, z + kClasses);
      float sum = 0.0f;
      for (int j = 0; j < kClasses; ++j) sum += std::exp(z[j] - zmax);
      loss_sum += std::log(sum) - (z[test.labels[begin + r]] - zmax);
    }
  }
  Evaluation result;
  result.correct = correct;
  if (with_loss && test.count > 0) result.cross_entropy = static_cast<float>(loss_sum / test.count);
  return result;
}

}  // namespace mnist
