#include "cuda_backend.h"

#include "../kernels/adam.h"
#include "../kernels/batch.h"
#include "../kernels/gemm.h"
#include "../kernels/reduce.h"
#include "../kernels/relu_dropout.h"
#include "../kernels/softmax_xent.h"

namespace mnist {

namespace k = kernels;

CudaBackend::CudaBackend(const TrainConfig& config, const MnistData& data,
                         std::vector<float> initial_params)
    : config_(config),
      layout_(make_layout(config.model, config.hidden_units)),
      train_count_(data.train.count),
      test_count_(data.test.count),
      train_images_(data.train.images),
      train_labels_(data.train.labels),
      test_labels_(data.test.labels),
      test_x_(std::size_t(data.test.count) * kInputs),
      orders_(2 * std::size_t(data.train.count)),
      step_(std::vector<std::int64_t>{0}),
      params_(initial_params),
      grads_(layout_.total),
      adam_m_(std::vector<float>(layout_.total, 0.0f)),
      adam_v_(std::vector<float>(layout_.total, 0.0f)),
      x_(std::size_t(config.batch_size) * kInputs),
      hidden_(std::size_t(config.batch_size) * std::max(layout_.hidden(), 1)),
      logits_(std::size_t(config.batch_size) * kClasses),
      dlogits_(std::size_t(config.batch_size) * kClasses),
      dhidden_(std::size_t(config.batch_size) * std::max(layout_.hidden(), 1)),
      row_loss_(config.batch_size),
      loss_(1),
      y_(config.batch_size),
      eval_hidden_(std::size_t(data.test.count) * std::max(layout_.hidden(), 1)),
      eval_logits_(std::size_t(data.test.count) * kClasses),
      correct_(1) {
  if (initial_params.size() != layout_.total)
    throw std::invalid_argument("CudaBackend: parameter count");
  DeviceBuffer<std::uint8_t> test_bytes(data.test.images);
  k::bytes_to_unit_float(test_bytes.get(), test_x_.get(), test_bytes.size(), stream_.get());
  MNIST_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
}

void CudaBackend::set_epoch_order(std::int64_t epoch, const std::vector<std::int32_t>& order) {
  // Stream-ordered after every step already queued, which has finished with this slot's old epoch.
  std::int32_t* slot = orders_.get() + (epoch % 2) * std::size_t(train_count_);
  MNIST_CUDA_CHECK(cudaMemcpyAsync(slot, order.data(), order.size() * sizeof(std::int32_t),
                                   cudaMemcpyHostToDevice, stream_.get()));
  MNIST_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));  // `order` is pageable host memory
}

void CudaBackend::record_step(cudaStream_t s) {
  const int batch = config_.batch_size;
  float* p = params_.get();
  float* g = grads_.get();
  k::gather_batch(train_images_.get(), train_labels_.get(), orders_.get(), train_count_,
                  step_.get(), batch, kInputs, x_.get(), y_.get(), s);
  const Layer& out = layout_.layers.back();
  const float* last_input = x_.get();
  if (layout_.layers.size() == 2) {
    const Layer& l1 = layout_.layers[0];
    k::ReluDropout epi{true, config_.keep_prob, config_.seed, step_.get()};
    k::linear_forward(x_.get(), p + l1.w, p + l1.b, hidden_.get(), batch, l1.in, l1.out, epi, s);
    last_input = hidden_.get();
  }
  k::linear_forward(last_input, p + out.w, p + out.b, logits_.get(), batch, out.in, out.out,
                    k::ReluDropout{}, s);
  k::softmax_xent(logits_.get(), y_.get(), row_loss_.get(), dlogits_.get(), batch, out.out, s);
  k::matmul_at_b(last_input, dlogits_.get(), g + out.w, batch, out.in, out.out, s);
  k::column_sums(dlogits_.get(), g + out.b, batch, out.out, s);
  if (layout_.layers.size() == 2) {
    const Layer& l1 = layout_.layers[0];
    k::matmul_a_bt(dlogits_.get(), p + out.w, dhidden_.get(), batch, out.out, l1.out, s);
    k::relu_dropout_backward(dhidden_.get(), hidden_.get(), dhidden_.get(),
                             std::size_t(batch) * l1.out, config_.keep_prob, s);
    k::matmul_at_b(x_.get(), dhidden_.get(), g + l1.w, batch, l1.in, l1.out, s);
    k::column_sums(dhidden_.get(), g + l1.b, batch, l1.out, s);
  }
  k::adam_update(p, g, adam_m_.get(), adam_v_.get(), layout_.total, config_.learning_rate,
                 kAdamBeta1, kAdamBeta2, kAdamEpsilon, step_.get(), s);
  k::advance_step(step_.get(), s);
}

void CudaBackend::record_eval(cudaStream_t s) {
  const float* p = params_.get();
  MNIST_CUDA_CHECK(cudaMemsetAsync(correct_.get(), 0, sizeof(int), s));
  const float* input = test_x_.get();
  if (layout_.layers.size() == 2) {
    const Layer& l1 = layout_.layers[0];
    k::ReluDropout relu_only{true, 1.0f, 0, nullptr};
    k::linear_forward(input, p + l1.w, p + l1.b, eval_hidden_.get(), test_count_, l1.in, l1.out,
                      relu_only, s);
    input = eval_hidden_.get();
  }
  const Layer& out = layout_.layers.back();
  k::linear_forward(input, p + out.w, p + out.b, eval_logits_.get(), test_count_, out.in, out.out,
                    k::ReluDropout{}, s);
  k::count_correct(eval_logits_.get(), test_labels_.get(), test_count_, out.out, correct_.get(), s);
}

void CudaBackend::train_step() {
  if (!step_graph_.ready())
    step_graph_.capture(stream_.get(), [this](cudaStream_t s) { record_step(s); });
  step_graph_.launch(stream_.get());
  host_step_ += 1;
}

void CudaBackend::synchronize() { MNIST_CUDA_CHECK(cudaStreamSynchronize(stream_.get())); }

float CudaBackend::last_loss() {
  k::mean(row_loss_.get(), loss_.get(), config_.batch_size, stream_.get());
  return loss_.download(stream_.get())[0];
}

int CudaBackend::evaluate_test() {
  if (!eval_graph_.ready())
    eval_graph_.capture(stream_.get(), [this](cudaStream_t s) { record_eval(s); });
  eval_graph_.launch(stream_.get());
  return correct_.download(stream_.get())[0];
}

TrainState CudaBackend::state() {
  synchronize();
  TrainState s;
  s.params = params_.download(stream_.get());
  s.adam_m = adam_m_.download(stream_.get());
  s.adam_v = adam_v_.download(stream_.get());
  s.step = host_step_;
  return s;
}

void CudaBackend::set_state(const TrainState& state) {
  if (state.params.size() != layout_.total)
    throw std::invalid_argument("CudaBackend: parameter count");
  synchronize();
  params_.upload(state.params, stream_.get());
  adam_m_.upload(state.adam_m, stream_.get());
  adam_v_.upload(state.adam_v, stream_.get());
  step_.upload(std::vector<std::int64_t>{state.step}, stream_.get());
  host_step_ = state.step;
}

}  // namespace mnist
