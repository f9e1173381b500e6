#include "gpu/gpu_backend_base.h"

#include <stdexcept>

#include "gpu/event_stopwatch.h"
#include "kernels/common/sample_stream.h"
#include "kernels/reduce.h"

namespace mnist {

GpuBackendBase::GpuBackendBase(const TrainConfig& config, const MnistData& data,
                               const std::vector<float>& initial_params)
    : config_(config),
      layout_(make_layout(config.model, config.hidden_units)),
      train_count_(data.train.count),
      test_count_(data.test.count),
      orders_(kEpochSlots * std::size_t(data.train.count)),
      step_(std::vector<std::int64_t>{0}),
      params_(initial_params),
      adam_m_(std::vector<float>(layout_.total, 0.0f)),
      adam_v_(std::vector<float>(layout_.total, 0.0f)),
      row_loss_(config.batch_size),
      loss_(1),
      correct_(1) {
  if (initial_params.size() != layout_.total)
    throw std::invalid_argument("GPU backend: parameter count");
}

void GpuBackendBase::set_epoch_order(std::int64_t epoch, const std::vector<std::int32_t>& order) {
  // Stream-ordered after every step already queued, which has finished with this slot's old epoch.
  std::int32_t* slot = orders_.get() + order_slot({epoch, 0}, train_count_);
  MNIST_CUDA_CHECK(cudaMemcpyAsync(slot, order.data(), order.size() * sizeof(std::int32_t),
                                   cudaMemcpyHostToDevice, stream_.get()));
  synchronize();  // `order` is pageable host memory
}

void GpuBackendBase::train_step() {
  step_graph_.run(stream_.get(), config_.cuda_graphs, [this](cudaStream_t s) { record_step(s); });
  host_step_ += 1;
}

void GpuBackendBase::synchronize() { MNIST_CUDA_CHECK(cudaStreamSynchronize(stream_.get())); }

float GpuBackendBase::last_loss() {
  kernels::mean(row_loss_.get(), loss_.get(), config_.batch_size, stream_.get());
  return loss_.download(stream_.get())[0];
}

int GpuBackendBase::evaluate_test() {
  eval_graph_.run(stream_.get(), config_.cuda_graphs, [this](cudaStream_t s) { record_eval(s); });
  return correct_.download(stream_.get())[0];
}

std::unique_ptr<Stopwatch> GpuBackendBase::stopwatch() {
  return std::make_unique<EventStopwatch>(stream_.get());
}

TrainState GpuBackendBase::state() {
  synchronize();
  TrainState st;
  st.params = params_.download(stream_.get());
  st.adam_m = adam_m_.download(stream_.get());
  st.adam_v = adam_v_.download(stream_.get());
  st.step = host_step_;
  return st;
}

void GpuBackendBase::set_state(const TrainState& state) {
  if (state.params.size() != layout_.total)
    throw std::invalid_argument("GPU backend: parameter count");
  synchronize();
  params_.upload(state.params, stream_.get());
  adam_m_.upload(state.adam_m, stream_.get());
  adam_v_.upload(state.adam_v, stream_.get());
  step_.upload(std::vector<std::int64_t>{state.step}, stream_.get());
  host_step_ = state.step;
}

}  // namespace mnist
