#include "gpu/cuda_backend.h"

#include <optional>

#include "error.h"
#include "kernels/fused_step.h"
#include "kernels/output_layer.h"
#include "kernels/softmax_xent.h"

namespace mnist {

namespace k = kernels;

namespace {

std::size_t region(const Layer& l) { return std::size_t(l.in + 1) * l.out; }  // [W; b]

// Partial gradients of a layer whose weight gradient is split (split-K), else 0.
std::size_t split_floats(const Layer& l, int batch) {
  const int splits = k::weight_grad_splits(l.in, l.out, batch);
  return splits > 1 ? splits * region(l) : 0;
}

std::size_t split_scratch_floats(const ModelLayout& layout, int batch) {
  std::size_t floats = 0;
  for (const Layer& l : layout.layers) floats += split_floats(l, batch);
  return floats;
}

// A replica's own TrainConfig: its batch is its shard (checked before anything is sized by it),
// its step tiled (a replica steps in halves around the all-reduce).
TrainConfig shard_config(TrainConfig config, const Shard& shard) {
  if (config.step_kernel == StepKernel::kFused)
    throw Error(ExitCode::kBadArguments,
                "--step_kernel fused trains on one GPU (--gpus 1; data-parallel replicas step "
                "tiled)");
  if (shard.rows < 1 || shard.row_offset < 0 || shard.global_batch != config.batch_size ||
      shard.row_offset + shard.rows > shard.global_batch)
    throw std::invalid_argument("CudaBackend: shard outside the global batch");
  config.batch_size = shard.rows;
  config.step_kernel = StepKernel::kTiled;
  return config;
}

// The fused step's plan where the step runs as the fused kernel, else nullopt: --step_kernel auto
// takes it where it applies; --step_kernel fused where it cannot is a bad command line (exit 2),
// saying why.
std::optional<k::FusedPlan> fused_plan_for(const TrainConfig& config, const ModelLayout& layout) {
  if (config.step_kernel == StepKernel::kTiled) return std::nullopt;
  k::FusedPlan plan;
  if (layout.layers.size() != 2)
    plan.unsupported = "runs the mlp only";
  else if (config.precision != Precision::kFp32)
    plan.unsupported = "is fp32 (tensor-core precisions run tiled)";
  else
    plan = k::plan_fused_step(config.batch_size, layout.hidden());
  if (plan.unsupported && config.step_kernel == StepKernel::kFused)
    throw Error(ExitCode::kBadArguments, std::string("--step_kernel fused: ") + plan.unsupported);
  if (plan.unsupported) return std::nullopt;
  return plan;
}

}  // namespace

Shard shard_of(int global_batch, int rank, int ranks) {
  const int base = global_batch / ranks, extra = global_batch % ranks;
  return {global_batch, rank * base + std::min(rank, extra), base + (rank < extra ? 1 : 0)};
}

CudaBackend::CudaBackend(const TrainConfig& config, const MnistData& data,
                         std::vector<float> initial_params, const Shard& shard)
    : CudaBackend(shard_config(config, shard), data, std::move(initial_params)) {
  replica_ = true;
  global_batch_ = shard.global_batch;
  row_offset_ = shard.row_offset;
  gradient_ = DeviceBuffer<float>(layout_.total);
}

CudaBackend::CudaBackend(const TrainConfig& config, const MnistData& data,
                         std::vector<float> initial_params)
    : GpuBackendBase(config, data, initial_params),
      forward_splits_(
          layout_.layers.size() == 2 ? k::forward_splits(config.batch_size, layout_.hidden()) : 1),
      test_images_(data.test.images),
      test_labels_(data.test.labels),
      validation_images_(data.validation.images),
      validation_labels_(data.validation.labels),
      batch_step_(1),
      split_scratch_(split_scratch_floats(layout_, config.batch_size)),
      forward_partials_(forward_splits_ > 1
                            ? std::size_t(forward_splits_) * config.batch_size * layout_.hidden()
                            : 0),
      hidden_(std::size_t(config.batch_size) * std::max(layout_.hidden(), 1)),
      logits_(std::size_t(config.batch_size) * kClasses),
      dlogits_(std::size_t(config.batch_size) * kClasses),
      dhidden_(std::size_t(config.batch_size) * std::max(layout_.hidden(), 1)),
      batch_labels_(config.batch_size),
      batch_images_(config.batch_size),
      eval_out_(std::size_t(std::max(data.test.count, data.validation.count)) *
                std::max(layout_.hidden(), kClasses)) {
  fused_plan_ = fused_plan_for(config_, layout_);
  if (fused_plan_)
    fused_scratch_ =
        DeviceBuffer<float>(k::fused_step_scratch_floats(config_.batch_size, layout_.hidden()));
}

// One training step as 3 (softmax) or 4 (mlp) kernels, the CPU reference's order:
//   forward           X*W1 on the gathered bytes (+ b1, ReLU, dropout)        gemm.h
//   loss_and_backward output layer fused with the loss, dlogits and dhidden   output_layer.h
//                     (softmax model: softmax_xent on the logits)             softmax_xent.h
//   update            [dW; db] = [X; 1]^T dZ per layer, Adam in the epilogue  gemm.h
//                     (the two layers' products run side by side)
// Small batches split the forward's 784-deep reduction (split-K) to fill the GPU; the output
// layer then adds the slices and applies bias, ReLU and dropout itself.
void CudaBackend::record_step(cudaStream_t s) {
  if (replica_) throw std::logic_error("cuda backend: a data-parallel replica steps in halves");
  if (fused_plan_) return fused_step(s);
  forward(s);
  loss_and_backward(s);
  update(s);
}

// The whole step as one cooperative kernel (kernels/fused_step.h): the same batch, dropout
// draws, loss, step counter and Adam as the tiled step; the step's metrics after it.
void CudaBackend::fused_step(cudaStream_t s) {
  const Layer& first = layout_.layers.front();
  const Layer& out = layout_.layers[1];
  float* p = params_.get();
  k::FusedStep a;
  a.batch = k::ByteRows{train_images_.get(), nullptr,     orders_.get(),
                        train_count_,        step_.get(), config_.batch_size};
  a.labels = train_labels_.get();
  a.w1 = p + first.w, a.b1 = p + first.b, a.w2 = p + out.w, a.b2 = p + out.b;
  a.m = adam_m_.get(), a.v = adam_v_.get();
  a.w1_offset = first.w, a.b1_offset = first.b, a.w2_offset = out.w, a.b2_offset = out.b;
  a.hidden = first.out;
  a.keep_prob = config_.keep_prob;
  a.seed = config_.seed;
  a.lr = config_.learning_rate, a.beta1 = kAdamBeta1, a.beta2 = kAdamBeta2, a.eps = kAdamEpsilon;
  a.step = step_.get();
  a.row_loss = row_loss_.get(), a.row_correct = row_correct_.get();
  a.batch_images = batch_images_.get(), a.batch_labels = batch_labels_.get();
  a.batch_step = batch_step_.get();
  a.scratch = fused_scratch_.get();
  op("step", s, [&] { k::fused_step(a, *fused_plan_, s); });
  record_step_metrics(s);
}

void CudaBackend::forward(cudaStream_t s) {
  const Layer& first = layout_.layers.front();
  const float* p = params_.get();
  const k::ByteRows batch_rows{train_images_.get(), nullptr,       orders_.get(), train_count_,
                               step_.get(),         global_batch_, row_offset_};
  const k::GatherRecord record{train_labels_.get(), batch_labels_.get(), batch_images_.get(),
                               batch_step_.get()};
  op("forward", s, [&] {
    if (layout_.layers.size() == 1) {
      k::linear_forward_bytes(batch_rows, p + first.w, p + first.b, logits_.get(),
                              config_.batch_size, first.out, {}, record, s, config_.precision);
    } else if (forward_splits_ > 1) {
      k::linear_forward_bytes_split(batch_rows, p + first.w, forward_partials_.get(),
                                    config_.batch_size, first.out, record, s, config_.precision);
    } else {
      const k::ReluDropout relu_dropout{true, config_.keep_prob, config_.seed, step_.get(),
                                        row_offset_};
      k::linear_forward_bytes(batch_rows, p + first.w, p + first.b, hidden_.get(),
                              config_.batch_size, first.out, relu_dropout, record, s,
                              config_.precision);
    }
  });
}

void CudaBackend::loss_and_backward(cudaStream_t s) {
  const Layer& first = layout_.layers.front();
  if (layout_.layers.size() == 1) {
    op("loss_and_backward", s, [&] {
      k::softmax_xent(logits_.get(), batch_labels_.get(), row_loss_.get(), row_correct_.get(),
                      dlogits_.get(), config_.batch_size, first.out, step_.get(), s);
    });
    return;
  }
  const Layer& out = layout_.layers[1];
  const float* p = params_.get();
  k::SplitHidden split{};
  if (forward_splits_ > 1) {
    split = {forward_partials_.get(), forward_splits_, p + first.b,
             k::ReluDropout{true, config_.keep_prob, config_.seed, batch_step_.get(), row_offset_}};
  }
  op("loss_and_backward", s, [&] {
    k::output_layer_train(hidden_.get(), split, config_.batch_size, first.out, p + out.w, p + out.b,
                          batch_labels_.get(), config_.keep_prob, row_loss_.get(),
                          row_correct_.get(), dlogits_.get(), dhidden_.get(), step_.get(), s);
  });
}

// Adam for a layer's [W; b] region; takes the layer's share of split_scratch when its weight
// gradient is split (split-K).
k::AdamUpdate CudaBackend::adam_for(const Layer& l, float*& split_scratch) {
  const std::size_t split = split_floats(l, config_.batch_size);
  const k::AdamUpdate update{
      params_.get() + l.w,   adam_m_.get() + l.w, adam_v_.get() + l.w,
      config_.learning_rate, kAdamBeta1,          kAdamBeta2,
      kAdamEpsilon,          step_.get(),         split ? split_scratch : nullptr};
  split_scratch += split;
  return update;
}

void CudaBackend::update(cudaStream_t s) {
  const int batch = config_.batch_size;
  const k::ByteRows gathered{
      train_images_.get(), batch_images_.get(), nullptr, train_count_, nullptr, batch};
  float* scratch = split_scratch_.size() ? split_scratch_.get() : nullptr;
  const Layer& first = layout_.layers.front();
  const k::AdamUpdate adam_first = adam_for(first, scratch);
  if (layout_.layers.size() == 1) {
    op("update layer1", s, [&] {
      k::weight_grad_adam_bytes(gathered, dlogits_.get(), batch, first.out, adam_first, s,
                                config_.precision);
    });
    record_step_metrics(s);
    return;
  }
  const Layer& out = layout_.layers[1];
  const k::AdamUpdate adam_out = adam_for(out, scratch);
  const cudaStream_t side = side_stream_.get();
  MNIST_CUDA_CHECK(cudaEventRecord(fork_.get(), s));
  MNIST_CUDA_CHECK(cudaStreamWaitEvent(side, fork_.get(), 0));
  op("update layer2", side, [&] {
    k::weight_grad_adam(hidden_.get(), first.out, dlogits_.get(), batch, out.out, adam_out, side,
                        config_.precision);
  });
  record_step_metrics(side);  // beside the first layer's (longer) update
  MNIST_CUDA_CHECK(cudaEventRecord(join_.get(), side));
  op("update layer1", s, [&] {
    k::weight_grad_adam_bytes(gathered, dhidden_.get(), batch, first.out, adam_first, s,
                              config_.precision);
  });
  MNIST_CUDA_CHECK(cudaStreamWaitEvent(s, join_.get(), 0));
}

void CudaBackend::record_gradients(cudaStream_t s) {
  if (!replica_) throw std::logic_error("cuda backend: not a data-parallel replica");
  forward(s);
  loss_and_backward(s);
  replica_gradients(s);
}

// The update's products without Adam: each layer's [dW; db] into its region of gradient_, scaled
// so that the sum over all replicas is the global batch's mean gradient.
void CudaBackend::replica_gradients(cudaStream_t s) {
  const int rows = config_.batch_size;
  const float scale = float(rows) / float(global_batch_);
  const k::ByteRows gathered{
      train_images_.get(), batch_images_.get(), nullptr, train_count_, nullptr, rows};
  float* scratch = split_scratch_.size() ? split_scratch_.get() : nullptr;
  const Layer& first = layout_.layers.front();
  float* first_scratch = split_floats(first, rows) ? scratch : nullptr;
  scratch += split_floats(first, rows);
  if (layout_.layers.size() == 1) {
    op("gradient layer1", s, [&] {
      k::weight_grad_bytes(gathered, dlogits_.get(), rows, first.out, scale,
                           gradient_.get() + first.w, first_scratch, s, config_.precision);
    });
    record_step_metrics(s);
    return;
  }
  const Layer& out = layout_.layers[1];
  float* out_scratch = split_floats(out, rows) ? scratch : nullptr;
  const cudaStream_t side = side_stream_.get();
  MNIST_CUDA_CHECK(cudaEventRecord(fork_.get(), s));
  MNIST_CUDA_CHECK(cudaStreamWaitEvent(side, fork_.get(), 0));
  op("gradient layer2", side, [&] {
    k::weight_grad(hidden_.get(), first.out, dlogits_.get(), rows, out.out, scale,
                   gradient_.get() + out.w, out_scratch, side, config_.precision);
  });
  record_step_metrics(side);
  MNIST_CUDA_CHECK(cudaEventRecord(join_.get(), side));
  op("gradient layer1", s, [&] {
    k::weight_grad_bytes(gathered, dhidden_.get(), rows, first.out, scale,
                         gradient_.get() + first.w, first_scratch, s, config_.precision);
  });
  MNIST_CUDA_CHECK(cudaStreamWaitEvent(s, join_.get(), 0));
}

// Adam over every parameter at once from the all-reduced gradient (t = *step, advanced by the
// loss kernel of the first half).
void CudaBackend::record_apply(cudaStream_t s) {
  if (!replica_) throw std::logic_error("cuda backend: not a data-parallel replica");
  const k::AdamUpdate adam{params_.get(),         adam_m_.get(), adam_v_.get(),
                           config_.learning_rate, kAdamBeta1,    kAdamBeta2,
                           kAdamEpsilon,          step_.get(),   nullptr};
  op("adam", s, [&] { k::adam_from_partials(gradient_.get(), 1, layout_.total, adam, s); });
}

void CudaBackend::record_eval(cudaStream_t s, EvalSplit split, float* row_loss) {
  const float* p = params_.get();
  const bool test = split == EvalSplit::kTest;
  const int count = split_count(split);
  const std::uint8_t* labels = test ? test_labels_.get() : validation_labels_.get();
  const k::ByteRows rows{test ? test_images_.get() : validation_images_.get(),
                         nullptr,
                         nullptr,
                         count,
                         nullptr,
                         count};
  const Layer& first = layout_.layers.front();
  if (layout_.layers.size() == 2) {
    const Layer& out = layout_.layers[1];
    const k::ReluDropout relu_only{true, 1.0f, 0, nullptr};
    // In two products where the rows overflow whole waves of large tiles (gemm.h).
    const int head = k::forward_wave_rows(count, first.out);
    k::linear_forward_bytes(k::ByteRows{rows.images, nullptr, nullptr, head, nullptr, head},
                            p + first.w, p + first.b, eval_out_.get(), head, first.out, relu_only,
                            {}, s, config_.precision);
    if (head < count) {
      const int tail = count - head;
      k::linear_forward_bytes(k::ByteRows{rows.images + std::size_t(head) * kImagePixels, nullptr,
                                          nullptr, tail, nullptr, tail},
                              p + first.w, p + first.b,
                              eval_out_.get() + std::size_t(head) * first.out, tail, first.out,
                              relu_only, {}, s, config_.precision);
    }
    k::output_layer_count_correct(eval_out_.get(), count, first.out, p + out.w, p + out.b, labels,
                                  correct_.get(), row_loss, s);
  } else {
    k::linear_forward_bytes(rows, p + first.w, p + first.b, eval_out_.get(), count, first.out, {},
                            {}, s, config_.precision);
    k::count_correct(eval_out_.get(), labels, count, first.out, correct_.get(), row_loss, s);
  }
}

}  // namespace mnist
