#include "gpu/gpu_backend_base.h"

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>

#include "error.h"
#include "gpu/event_stopwatch.h"
#include "kernels/common/sample_stream.h"
#include "kernels/gemm.h"
#include "kernels/launch.cuh"
#include "kernels/reduce.h"
#include "kernels/tensor_stats.h"

namespace mnist {

namespace k = kernels;

namespace {

// Per-step scalars the device keeps before a forced read-back (the loop reads them at every
// evaluation, normally long before).
constexpr int kMetricsCapacity = 256;

// The tensors a statistics pass reduces, in summary_tensor_names() order but without the
// duplicates: the mlp's layer2 pre-activations are its activations (identity), the softmax
// model's layer1 pre-activations likewise.
int distinct_stats(const ModelLayout& layout) { return layout.layers.size() == 2 ? 7 : 3; }

}  // namespace

// Device events around every op and kernel of one eagerly enqueued step.
class StepTracer final : public k::LaunchObserver {
 public:
  StepTracer(cudaStream_t main, cudaStream_t origin_stream) : main_(main) {
    MNIST_CUDA_CHECK(cudaEventRecord(origin_.get(), origin_stream));
  }
  void begin(const std::string& name, cudaStream_t stream, bool kernel = false) {
    spans_.push_back(Span{name, lane(stream), kernel, std::make_unique<CudaEvent>(),
                          std::make_unique<CudaEvent>()});
    open_.push_back(spans_.size() - 1);
    MNIST_CUDA_CHECK(cudaEventRecord(spans_.back().start->get(), stream));
  }
  void end(cudaStream_t stream) {
    MNIST_CUDA_CHECK(cudaEventRecord(spans_[open_.back()].end->get(), stream));
    open_.pop_back();
  }
  void before(const char* kernel, cudaStream_t stream) override {
    const std::string op = open_.empty() ? "" : spans_[open_.back()].name + ": ";
    begin(op + kernel, stream, true);
  }
  void after(const char*, cudaStream_t stream) override { end(stream); }

  // The spans in the order they were enqueued (once the stream has passed them).
  std::vector<TracedOp> finish() {
    std::vector<TracedOp> ops;
    for (const Span& s : spans_) {
      float start_ms = 0, end_ms = 0;
      MNIST_CUDA_CHECK(cudaEventElapsedTime(&start_ms, origin_.get(), s.start->get()));
      MNIST_CUDA_CHECK(cudaEventElapsedTime(&end_ms, origin_.get(), s.end->get()));
      ops.push_back(TracedOp{s.name, s.lane, start_ms * 1000.0,
                             std::max(0.0, double(end_ms - start_ms) * 1000.0), s.kernel});
    }
    return ops;
  }

 private:
  struct Span {
    std::string name;
    int lane;
    bool kernel;
    std::unique_ptr<CudaEvent> start, end;
  };
  int lane(cudaStream_t stream) const { return stream == main_ ? 0 : 1; }

  cudaStream_t main_;
  CudaEvent origin_;
  std::vector<Span> spans_;
  std::vector<std::size_t> open_;  // spans begun and not yet ended, innermost last
};

GpuBackendBase::GpuBackendBase(const TrainConfig& config, const MnistData& data,
                               const std::vector<float>& initial_params)
    : config_(config),
      layout_(make_layout(config.model, config.hidden_units)),
      global_batch_(config.batch_size),
      train_count_(data.train.count),
      test_count_(data.test.count),
      validation_count_(data.validation.count),
      train_images_(data.train.images),
      train_labels_(data.train.labels),
      orders_(kEpochSlots * std::size_t(data.train.count)),
      step_(std::vector<std::int64_t>{0}),
      params_(initial_params),
      adam_m_(std::vector<float>(layout_.total, 0.0f)),
      adam_v_(std::vector<float>(layout_.total, 0.0f)),
      row_loss_(config.batch_size),
      loss_(1),
      row_correct_(config.batch_size),
      correct_(1),
      eval_row_loss_(std::size_t(std::max({test_count_, validation_count_, 1}))) {
  if (initial_params.size() != layout_.total)
    throw std::invalid_argument("GPU backend: parameter count");
  const k::DeviceFacts& facts = k::device_facts();
  if (config.precision != Precision::kFp32 && facts.major < 8) {
    throw Error(ExitCode::kBadArguments,
                std::string("--precision ") + precision_name(config.precision) +
                    " runs on tensor cores of compute capability 8.0 or newer; this GPU's is " +
                    std::to_string(facts.major) + ".x (use --precision fp32)");
  }
}

GpuBackendBase::~GpuBackendBase() = default;

void GpuBackendBase::set_epoch_order(std::int64_t epoch, const std::vector<std::int32_t>& order) {
  // Stream-ordered after every step already queued, which has finished with this slot's old epoch.
  std::int32_t* slot = orders_.get() + order_slot({epoch, 0}, train_count_);
  MNIST_CUDA_CHECK(cudaMemcpyAsync(slot, order.data(), order.size() * sizeof(std::int32_t),
                                   cudaMemcpyHostToDevice, stream_.get()));
  synchronize();  // `order` is pageable host memory
}

void GpuBackendBase::begin_op(const char* name, cudaStream_t stream) {
  if (tracer_) tracer_->begin(name, stream);
}

void GpuBackendBase::end_op(cudaStream_t stream) {
  if (tracer_) tracer_->end(stream);
}

void GpuBackendBase::record_step_metrics(cudaStream_t s) {
  if (!metrics_enabled_) return;
  op("step_metrics", s, [&] {
    k::step_metrics(row_loss_.get(), row_correct_.get(), config_.batch_size, step_.get(),
                    metrics_.get(), kMetricsCapacity, s);
  });
}

void GpuBackendBase::train_step() {
  if (metrics_enabled_ && host_step_ - metrics_from_ >= kMetricsCapacity) collect_pending();
  step_graph_.run(stream_.get(), config_.cuda_graphs, [this](cudaStream_t s) { record_step(s); });
  host_step_ += 1;
}

void GpuBackendBase::record_gradients(cudaStream_t) {
  throw std::logic_error(name() + " backend: not a data-parallel replica");
}
void GpuBackendBase::record_apply(cudaStream_t) {
  throw std::logic_error(name() + " backend: not a data-parallel replica");
}

void GpuBackendBase::enqueue_gradients() {
  if (metrics_enabled_ && host_step_ - metrics_from_ >= kMetricsCapacity) collect_pending();
  if (tracer_) return record_gradients(stream_.get());
  gradients_graph_.run(stream_.get(), config_.cuda_graphs,
                       [this](cudaStream_t s) { record_gradients(s); });
}

void GpuBackendBase::enqueue_apply() {
  if (tracer_) {
    record_apply(stream_.get());
  } else {
    apply_graph_.run(stream_.get(), config_.cuda_graphs,
                     [this](cudaStream_t s) { record_apply(s); });
  }
  host_step_ += 1;
}

void GpuBackendBase::begin_traced_step() {
  if (metrics_enabled_ && host_step_ - metrics_from_ >= kMetricsCapacity) collect_pending();
  traced_step_ = host_step_;
  tracer_ = std::make_unique<StepTracer>(stream_.get(), stream_.get());
  k::launch_observer() = tracer_.get();
}

void GpuBackendBase::abandon_traced_step() {
  k::launch_observer() = nullptr;
  tracer_.reset();
}

bool GpuBackendBase::holds_full_buffers() const {
  return (metrics_enabled_ && host_step_ - metrics_from_ >= kMetricsCapacity) ||
         stats_steps_.size() == kStatsCapacity;
}

void GpuBackendBase::end_traced_step() {
  k::launch_observer() = nullptr;
  if (tracer_) pending_traces_.emplace_back(traced_step_, std::move(tracer_));
}

// The step enqueued op by op between device events; nothing waits here: the events are read at
// the next collect_pending, which synchronises anyway.
void GpuBackendBase::traced_train_step() {
  if (metrics_enabled_ && host_step_ - metrics_from_ >= kMetricsCapacity) collect_pending();
  tracer_ = std::make_unique<StepTracer>(stream_.get(), stream_.get());
  k::launch_observer() = tracer_.get();
  try {
    record_step(stream_.get());
  } catch (...) {
    k::launch_observer() = nullptr;
    tracer_.reset();
    throw;
  }
  k::launch_observer() = nullptr;
  pending_traces_.emplace_back(host_step_, std::move(tracer_));
  host_step_ += 1;
}

void GpuBackendBase::synchronize() { MNIST_CUDA_CHECK(cudaStreamSynchronize(stream_.get())); }

float GpuBackendBase::last_loss() {
  kernels::mean(row_loss_.get(), loss_.get(), config_.batch_size, stream_.get());
  return loss_.download(stream_.get())[0];
}

Evaluation GpuBackendBase::evaluate(EvalSplit split, bool with_loss) {
  const int count = split_count(split);
  Evaluation result;
  if (count == 0) return result;
  CudaGraph& graph = eval_graphs_[split == EvalSplit::kTest ? 0 : 1][with_loss ? 1 : 0];
  graph.run(stream_.get(), config_.cuda_graphs, [&](cudaStream_t s) {
    MNIST_CUDA_CHECK(cudaMemsetAsync(correct_.get(), 0, sizeof(int), s));
    record_eval(s, split, with_loss ? eval_row_loss_.get() : nullptr);
    if (with_loss) k::mean(eval_row_loss_.get(), loss_.get(), count, s);
  });
  // Both results in one wait.
  MNIST_CUDA_CHECK(cudaMemcpyAsync(&result.correct, correct_.get(), sizeof(int),
                                   cudaMemcpyDeviceToHost, stream_.get()));
  if (with_loss) {
    MNIST_CUDA_CHECK(cudaMemcpyAsync(&result.cross_entropy, loss_.get(), sizeof(float),
                                     cudaMemcpyDeviceToHost, stream_.get()));
  }
  synchronize();
  return result;
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
  collect_pending();  // what the device holds belongs to the old state's steps: dropped
  pending_ = Summaries{};
  params_.upload(state.params, stream_.get());
  adam_m_.upload(state.adam_m, stream_.get());
  adam_v_.upload(state.adam_v, stream_.get());
  step_.upload(std::vector<std::int64_t>{state.step}, stream_.get());
  host_step_ = state.step;
  metrics_from_ = state.step;
}

// ---- Summaries ----

void GpuBackendBase::enable_step_metrics() {
  if (metrics_enabled_) return;
  metrics_ = DeviceBuffer<float2>(kMetricsCapacity);
  metrics_enabled_ = true;
  metrics_from_ = host_step_;
  step_graph_.reset();  // the step's graph gains the step_metrics kernel
  gradients_graph_.reset();
}

void GpuBackendBase::record_statistics() {
  const int distinct = distinct_stats(layout_);
  const int buckets = static_cast<int>(default_bucket_limits().size());
  const std::size_t slot_doubles = k::stats_slot_doubles(buckets);
  if (!stats_slots_.size()) {  // first use: the buffers
    bucket_limits_ = DeviceBuffer<double>(default_bucket_limits());
    stats_slots_ = DeviceBuffer<double>(kStatsCapacity * distinct * slot_doubles);
    stats_scratch_ = DeviceBuffer<double>(k::tensor_stats_scratch_doubles());
    const Layer& first = layout_.layers.front();
    summary_pre_ = DeviceBuffer<float>(std::size_t(config_.batch_size) * first.out);
    if (layout_.layers.size() == 2) {
      const int splits = k::forward_splits(config_.batch_size, first.out);
      if (splits > 1)
        summary_partials_ =
            DeviceBuffer<float>(std::size_t(splits) * config_.batch_size * first.out);
      summary_hidden_ = DeviceBuffer<float>(std::size_t(config_.batch_size) * first.out);
      summary_logits_ = DeviceBuffer<float>(std::size_t(config_.batch_size) * kClasses);
    }
  }
  if (stats_steps_.size() == kStatsCapacity) collect_pending();
  // Recorded once per slot into a graph (each slot's pass differs only in where it writes).
  const std::size_t index = stats_steps_.size();
  double* slots = stats_slots_.get() + index * distinct * slot_doubles;
  stats_graphs_[index].run(stream_.get(), config_.cuda_graphs,
                           [&](cudaStream_t s) { enqueue_statistics(s, slots); });
  stats_steps_.push_back(host_step_);
}

void GpuBackendBase::enqueue_statistics(cudaStream_t s, double* slots) {
  const int buckets = static_cast<int>(default_bucket_limits().size());
  k::StatsBatch reductions;  // reduced together once the forward pass below has run
  auto stats = [&](const float* x, std::size_t n, k::StatsOf f) {
    reductions.inputs[reductions.count++] = k::StatsInput{x, static_cast<std::int64_t>(n), f};
  };
  const float* p = params_.get();
  for (const Layer& l : layout_.layers) {
    stats(p + l.w, std::size_t(l.in) * l.out, k::StatsOf::kValues);
    stats(p + l.b, std::size_t(l.out), k::StatsOf::kValues);
  }
  // The next step's forward pass, by our kernels whichever backend this is: its batch (the step
  // counter has not advanced yet), its parameters, its dropout mask.
  const int batch = config_.batch_size;
  const Layer& first = layout_.layers.front();
  const k::ByteRows rows{train_images_.get(), nullptr,       orders_.get(), train_count_,
                         step_.get(),         global_batch_, row_offset_};
  const std::size_t first_values = std::size_t(batch) * first.out;
  if (layout_.layers.size() == 1) {
    k::linear_forward_bytes(rows, p + first.w, p + first.b, summary_pre_.get(), batch, first.out,
                            {}, {}, s, config_.precision);
    stats(summary_pre_.get(), first_values, k::StatsOf::kValues);
  } else {
    // Split-K like the step's own forward at small batches (much faster than unsplit there); the
    // finishing kernel adds the slices and the bias, and applies ReLU and the step's dropout mask.
    if (summary_partials_.size()) {
      k::linear_forward_bytes_split(rows, p + first.w, summary_partials_.get(), batch, first.out,
                                    {}, s, config_.precision);
      k::finish_summary_hidden(summary_partials_.get(), k::forward_splits(batch, first.out),
                               p + first.b, summary_pre_.get(), summary_hidden_.get(), batch,
                               first.out, config_.keep_prob, config_.seed, step_.get(), s);
    } else {
      k::linear_forward_bytes(rows, p + first.w, p + first.b, summary_pre_.get(), batch, first.out,
                              {}, {}, s, config_.precision);
      k::finish_summary_hidden(summary_pre_.get(), 1, nullptr, summary_pre_.get(),
                               summary_hidden_.get(), batch, first.out, config_.keep_prob,
                               config_.seed, step_.get(), s);
    }
    stats(summary_pre_.get(), first_values, k::StatsOf::kValues);
    stats(summary_pre_.get(), first_values, k::StatsOf::kRelu);
    const Layer& out = layout_.layers[1];
    k::summary_logits(summary_hidden_.get(), batch, out.in, p + out.w, p + out.b,
                      summary_logits_.get(), s);
    stats(summary_logits_.get(), std::size_t(batch) * kClasses, k::StatsOf::kValues);
  }
  k::tensor_stats(reductions, bucket_limits_.get(), buckets, slots, stats_scratch_.get(), s);
}

void GpuBackendBase::collect_pending() {
  // Everything comes back through pinned staging in one wait.
  const cudaStream_t s = stream_.get();
  const bool metrics = metrics_enabled_ && host_step_ > metrics_from_;
  if (metrics) {
    if (!metrics_host_.size()) metrics_host_ = PinnedBuffer<float2>(kMetricsCapacity);
    MNIST_CUDA_CHECK(cudaMemcpyAsync(metrics_host_.get(), metrics_.get(),
                                     kMetricsCapacity * sizeof(float2), cudaMemcpyDeviceToHost, s));
  }
  const int distinct = distinct_stats(layout_);
  const int buckets = static_cast<int>(default_bucket_limits().size());
  const std::size_t slot_doubles = k::stats_slot_doubles(buckets);
  const std::size_t stats_doubles = stats_steps_.size() * distinct * slot_doubles;
  if (stats_doubles) {
    if (stats_host_.size() < stats_doubles) stats_host_ = PinnedBuffer<double>(stats_doubles);
    MNIST_CUDA_CHECK(cudaMemcpyAsync(stats_host_.get(), stats_slots_.get(),
                                     stats_doubles * sizeof(double), cudaMemcpyDeviceToHost, s));
  }
  synchronize();
  for (auto& [step, tracer] : pending_traces_)
    pending_.traces.push_back(StepTrace{step, tracer->finish()});
  pending_traces_.clear();
  if (metrics) {
    for (std::int64_t t = metrics_from_; t < host_step_; ++t) {
      const float2 m = metrics_host_.get()[t % kMetricsCapacity];
      pending_.steps.push_back(StepMetrics{t, m.x, m.y});
    }
    metrics_from_ = host_step_;
  }
  if (stats_steps_.empty()) return;
  const double* host = stats_host_.get();
  const std::vector<std::string> names = summary_tensor_names(layout_);
  for (std::size_t i = 0; i < stats_steps_.size(); ++i) {
    StepStatistics step{stats_steps_[i], {}};
    for (int t = 0; t < distinct; ++t) {
      const double* slot = host + (i * distinct + t) * slot_doubles;
      if (slot[k::kStatsNonFinite] > 0) {
        throw Error(ExitCode::kDiverged, "training diverged: " + names[step.tensors.size()] +
                                             " holds NaN or Inf at step " +
                                             std::to_string(step.step) +
                                             " (try a smaller --learning_rate)");
      }
      const std::vector<double> counts(slot + k::kStatsHeader, slot + slot_doubles);
      step.tensors.push_back(histogram_from_counts(counts, slot[k::kStatsMin], slot[k::kStatsMax],
                                                   slot[k::kStatsSum], slot[k::kStatsSumSquares]));
      // The identity activations repeat the pre-activations (summary_tensor_names()).
      if (t == distinct - 1) step.tensors.push_back(step.tensors.back());
    }
    pending_.statistics.push_back(std::move(step));
  }
  stats_steps_.clear();
}

Summaries GpuBackendBase::take_summaries() {
  collect_pending();
  Summaries out = std::move(pending_);
  pending_ = Summaries{};
  return out;
}

}  // namespace mnist
