#include "gpu/cublas_backend.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "kernels/baseline/adam.h"
#include "kernels/baseline/batch.h"
#include "kernels/baseline/dropout.h"
#include "kernels/baseline/nll.h"
#include "kernels/softmax_xent.h"

namespace mnist {

namespace k = kernels;

// ---- LtMatmul ----

struct LtMatmul::Plan {
  cublasLtHandle_t handle{};
  cublasLtMatmulDesc_t desc{};
  cublasLtMatrixLayout_t a_layout{}, b_layout{}, c_layout{};  // cuBLASLt's A, B and C = D
  cublasLtMatmulAlgo_t algo{};
  const void* a = nullptr;  // cuBLASLt's A: our B
  const void* b = nullptr;  // cuBLASLt's B: our A
  void* c = nullptr;
  float alpha = 1.0f, beta = 0.0f;
  void* workspace = nullptr;
  std::size_t workspace_bytes = 0;
  // Where the bias gradient is not fused: bias = ones[1, k] * B, a product of its own.
  DeviceBuffer<std::uint8_t> ones;
  std::unique_ptr<LtMatmul> bias_sum;

  Plan() = default;
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;
  ~Plan() {
    if (!desc) return;  // nothing made yet (the layouts come after desc)
    const lib::CublasLt& lt = lib::cublas_lt();
    for (cublasLtMatrixLayout_t l : {a_layout, b_layout, c_layout})
      if (l) lt.cublasLtMatrixLayoutDestroy(l);
    lt.cublasLtMatmulDescDestroy(desc);
  }
};

namespace {

// The largest power of two up to 256 dividing the address: what the heuristic may assume of it.
std::uint32_t alignment_of(const void* p) {
  const auto address = reinterpret_cast<std::uintptr_t>(p);
  std::uint32_t alignment = 256;
  while (alignment > 1 && address % alignment != 0) alignment /= 2;
  return alignment;
}

cublasLtEpilogue_t lt_epilogue(LtEpilogue e) {
  switch (e) {
    case LtEpilogue::kNone:
      return CUBLASLT_EPILOGUE_DEFAULT;
    case LtEpilogue::kBias:
      return CUBLASLT_EPILOGUE_BIAS;
    case LtEpilogue::kReluBias:
      return CUBLASLT_EPILOGUE_RELU_BIAS;
    case LtEpilogue::kBiasGradient:
      return CUBLASLT_EPILOGUE_BGRADA;
  }
  throw std::logic_error("lt_epilogue: unknown epilogue");
}

const char* epilogue_name(LtEpilogue e) {
  switch (e) {
    case LtEpilogue::kNone:
      return "none";
    case LtEpilogue::kBias:
      return "BIAS";
    case LtEpilogue::kReluBias:
      return "RELU_BIAS";
    case LtEpilogue::kBiasGradient:
      return "BGRADA";
  }
  return "?";
}

template <typename T>
void set_attribute(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attribute,
                   const T& value) {
  MNIST_CUBLAS_CHECK(
      lib::cublas_lt().cublasLtMatmulDescSetAttribute(desc, attribute, &value, sizeof value));
}

template <typename T>
void set_preference(cublasLtMatmulPreference_t pref, cublasLtMatmulPreferenceAttributes_t attribute,
                    const T& value) {
  MNIST_CUBLAS_CHECK(
      lib::cublas_lt().cublasLtMatmulPreferenceSetAttribute(pref, attribute, &value, sizeof value));
}

// k ones in the operands' storage (fp32, or bf16's 1.0: 0x3f80), for a sum as a product.
DeviceBuffer<std::uint8_t> ones(int k, Precision precision) {
  std::vector<std::uint8_t> bytes;
  if (precision == Precision::kBf16) {
    const std::uint16_t one = 0x3f80;
    bytes.resize(std::size_t(k) * sizeof one);
    for (int i = 0; i < k; ++i) std::memcpy(bytes.data() + std::size_t(i) * sizeof one, &one, 2);
  } else {
    const float one = 1.0f;
    bytes.resize(std::size_t(k) * sizeof one);
    for (int i = 0; i < k; ++i) std::memcpy(bytes.data() + std::size_t(i) * sizeof one, &one, 4);
  }
  return DeviceBuffer<std::uint8_t>(bytes);
}

}  // namespace

bool LtMatmul::find_algorithm(Plan& q, cublasLtHandle_t handle, const LtProduct& p, void* workspace,
                              std::size_t workspace_bytes) {
  const lib::CublasLt& lt = lib::cublas_lt();
  q.handle = handle;
  q.a = p.b;
  q.b = p.a;
  q.c = p.c;
  q.alpha = p.alpha;
  q.workspace = workspace;
  q.workspace_bytes = workspace_bytes;

  const cudaDataType_t ab_type = p.precision == Precision::kBf16 ? CUDA_R_16BF : CUDA_R_32F;
  const cudaDataType_t c_type = p.c_bf16 ? CUDA_R_16BF : CUDA_R_32F;
  const cublasComputeType_t compute =
      p.precision == Precision::kTf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  MNIST_CUBLAS_CHECK(lt.cublasLtMatmulDescCreate(&q.desc, compute, CUDA_R_32F));
  // cuBLASLt is column-major, and a row-major matrix read column-major is its transpose: so
  // row-major C = op(A) op(B) is cuBLASLt's C^T = op(B)^T op(A)^T, our B its A and our A its B,
  // each with its own transpose flag. Its C is n x m, its bias runs along its rows (our columns).
  const cublasOperation_t op_a = p.transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = p.transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  set_attribute(q.desc, CUBLASLT_MATMUL_DESC_TRANSA, op_a);
  set_attribute(q.desc, CUBLASLT_MATMUL_DESC_TRANSB, op_b);
  set_attribute(q.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, lt_epilogue(p.epilogue));
  // The bias (or bias gradient) has C's type, cuBLASLt's default; the heuristic reads the pointer
  // for its alignment.
  if (p.epilogue != LtEpilogue::kNone)
    set_attribute(q.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, p.bias);

  // Stored shapes, column-major: our B (k x n row-major, or n x k transposed) is n x k (k x n);
  // our A (m x k, or k x m) is k x m (m x k); every leading dimension the stored row length.
  const std::uint64_t a_rows = p.transpose_b ? p.k : p.n, a_cols = p.transpose_b ? p.n : p.k;
  const std::uint64_t b_rows = p.transpose_a ? p.m : p.k, b_cols = p.transpose_a ? p.k : p.m;
  MNIST_CUBLAS_CHECK(lt.cublasLtMatrixLayoutCreate(&q.a_layout, ab_type, a_rows, a_cols,
                                                   static_cast<std::int64_t>(a_rows)));
  MNIST_CUBLAS_CHECK(lt.cublasLtMatrixLayoutCreate(&q.b_layout, ab_type, b_rows, b_cols,
                                                   static_cast<std::int64_t>(b_rows)));
  MNIST_CUBLAS_CHECK(lt.cublasLtMatrixLayoutCreate(&q.c_layout, c_type, p.n, p.m, p.n));

  cublasLtMatmulPreference_t pref{};
  MNIST_CUBLAS_CHECK(lt.cublasLtMatmulPreferenceCreate(&pref));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  cublasStatus_t status = CUBLAS_STATUS_SUCCESS;
  try {
    set_preference(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, std::uint64_t(workspace_bytes));
    set_preference(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, alignment_of(q.a));
    set_preference(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, alignment_of(q.b));
    set_preference(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, alignment_of(q.c));
    set_preference(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, alignment_of(q.c));
    status = lt.cublasLtMatmulAlgoGetHeuristic(handle, q.desc, q.a_layout, q.b_layout, q.c_layout,
                                               q.c_layout, pref, 1, &result, &found);
  } catch (...) {
    lt.cublasLtMatmulPreferenceDestroy(pref);
    throw;
  }
  lt.cublasLtMatmulPreferenceDestroy(pref);
  if (status == CUBLAS_STATUS_NOT_SUPPORTED || (status == CUBLAS_STATUS_SUCCESS && found == 0))
    return false;
  MNIST_CUBLAS_CHECK(status);
  q.algo = result.algo;
  return true;
}

LtMatmul::LtMatmul(cublasLtHandle_t handle, const LtProduct& p, void* workspace,
                   std::size_t workspace_bytes)
    : plan_(std::make_unique<Plan>()) {
  const bool needs_bias = p.epilogue != LtEpilogue::kNone;
  if (p.m <= 0 || p.n <= 0 || p.k <= 0 || !p.a || !p.b || !p.c ||
      needs_bias != (p.bias != nullptr) || (p.c_bf16 && p.precision != Precision::kBf16) ||
      (p.epilogue == LtEpilogue::kBiasGradient && p.transpose_b))
    throw std::invalid_argument(std::string("LtMatmul ") + p.name + ": inconsistent product");
  const bool fuse = p.epilogue != LtEpilogue::kBiasGradient || p.fuse_bias_gradient;
  if (fuse && find_algorithm(*plan_, handle, p, workspace, workspace_bytes)) return;
  if (p.epilogue == LtEpilogue::kBiasGradient) {
    // Where cuBLASLt offers no BGRADA for this product (or the caller declines it), the bias
    // gradient is a second product: bias[1, n] = ones[1, k] * B, in the same arithmetic.
    plan_ = std::make_unique<Plan>();
    LtProduct product = p;
    product.epilogue = LtEpilogue::kNone;
    product.bias = nullptr;
    if (find_algorithm(*plan_, handle, product, workspace, workspace_bytes)) {
      plan_->ones = ones(p.k, p.precision);
      LtProduct sum;
      sum.name = p.name;
      sum.m = 1, sum.n = p.n, sum.k = p.k;
      sum.a = plan_->ones.get(), sum.b = p.b, sum.c = p.bias;
      sum.precision = p.precision, sum.c_bf16 = p.c_bf16;
      plan_->bias_sum = std::make_unique<LtMatmul>(handle, sum, workspace, workspace_bytes);
      return;
    }
  }
  throw Error(ExitCode::kBadArguments,
              std::string("cuBLASLt has no algorithm on this GPU for the product ") + p.name +
                  " (" + std::to_string(p.m) + " x " + std::to_string(p.n) + " x " +
                  std::to_string(p.k) + ", " + precision_name(p.precision) + ", epilogue " +
                  epilogue_name(p.epilogue) +
                  "): the cublas baseline cannot run this configuration (try another "
                  "--precision or --hidden_units)");
}

LtMatmul::~LtMatmul() = default;
LtMatmul::LtMatmul(LtMatmul&&) noexcept = default;
LtMatmul& LtMatmul::operator=(LtMatmul&&) noexcept = default;

bool LtMatmul::fused() const { return plan_ && !plan_->bias_sum; }

void LtMatmul::run(cudaStream_t stream) const {
  if (!plan_) throw std::logic_error("LtMatmul::run: not planned");
  const Plan& q = *plan_;
  MNIST_CUBLAS_CHECK(lib::cublas_lt().cublasLtMatmul(
      q.handle, q.desc, &q.alpha, q.a, q.a_layout, q.b, q.b_layout, &q.beta, q.c, q.c_layout, q.c,
      q.c_layout, &q.algo, q.workspace, q.workspace_bytes, stream));
  if (q.bias_sum) q.bias_sum->run(stream);
}

// ---- CublasBackend ----

namespace {

// Calls f with a null pointer of the products' storage type (float or __nv_bfloat16), so that one
// generic lambda serves both.
template <typename F>
void with_storage(bool bf16, F&& f) {
  if (bf16) {
    f(static_cast<__nv_bfloat16*>(nullptr));
  } else {
    f(static_cast<float*>(nullptr));
  }
}

template <typename T>
T* as(const DeviceBuffer<std::uint8_t>& b) {
  return reinterpret_cast<T*>(b.get());
}

}  // namespace

CublasBackend::CublasBackend(const TrainConfig& config, const MnistData& data,
                             std::vector<float> initial_params)
    : GpuBackendBase(config, data, initial_params),
      bf16_(config.precision == Precision::kBf16),
      mlp_(layout_.layers.size() == 2),
      dropout_(mlp_ && config.keep_prob < 1.0f),
      workspace_(kLtWorkspaceBytes),
      params_bf16_(bf16_ ? layout_.total : 0),
      grads_(layout_.total),
      logits_(std::size_t(config.batch_size) * kClasses),
      dh_(mlp_ ? std::size_t(config.batch_size) * layout_.hidden() : 0),
      eval_logits_(std::size_t(std::max(data.test.count, data.validation.count)) * kClasses),
      y_(config.batch_size),
      test_labels_(data.test.labels),
      validation_labels_(data.validation.labels),
      x_(operands(std::size_t(config.batch_size) * kImagePixels)),
      a_(operands(mlp_ ? std::size_t(config.batch_size) * layout_.hidden() : 0)),
      h_(operands(dropout_ ? std::size_t(config.batch_size) * layout_.hidden() : 0)),
      dlogits_(operands(std::size_t(config.batch_size) * kClasses)),
      dz_(operands(mlp_ ? std::size_t(config.batch_size) * layout_.hidden() : 0)),
      test_x_(operands(std::size_t(data.test.count) * kImagePixels)),
      validation_x_(operands(std::size_t(data.validation.count) * kImagePixels)),
      eval_hidden_(operands(mlp_ ? std::size_t(std::max(data.test.count, data.validation.count)) *
                                       layout_.hidden()
                                 : 0)) {
  for (const auto& [bytes, stored] : {std::pair{&data.test.images, &test_x_},
                                      std::pair{&data.validation.images, &validation_x_}}) {
    if (bytes->empty()) continue;
    DeviceBuffer<std::uint8_t> staged(*bytes);
    with_storage(bf16_, [&](auto* type) {
      using T = std::remove_pointer_t<decltype(type)>;
      k::bytes_to_unit(staged.get(), as<T>(*stored), staged.size(), stream_.get());
    });
    synchronize();
  }
  refresh_bf16_parameters();
  plan_products(data);
}

DeviceBuffer<std::uint8_t> CublasBackend::operands(std::size_t count) const {
  return DeviceBuffer<std::uint8_t>(count * (bf16_ ? sizeof(__nv_bfloat16) : sizeof(float)));
}

LtMatmul CublasBackend::plan(const LtProduct& product) const {
  return LtMatmul(lt_.get(), product, workspace_.get(), workspace_.size());
}

void CublasBackend::refresh_bf16_parameters() {
  if (!bf16_) return;
  k::round_to_bf16(params_.get(), params_bf16_.get(), layout_.total, stream_.get());
  synchronize();
}

void CublasBackend::set_state(const TrainState& state) {
  GpuBackendBase::set_state(state);
  refresh_bf16_parameters();
}

// Every product of the step and the evaluation, planned once for its buffers (their addresses
// never change, so the heuristic's algorithm stays valid for the graphs that replay them).
void CublasBackend::plan_products(const MnistData& data) {
  const int batch = config_.batch_size;
  const Precision precision = config_.precision;
  // The products read the weights (and the hidden layer's bf16 output its bias) in their storage.
  const auto weights = [&](std::size_t offset) -> const void* {
    return bf16_ ? static_cast<const void*>(params_bf16_.get() + offset)
                 : static_cast<const void*>(params_.get() + offset);
  };
  const Layer& out = layout_.layers.back();
  const void* last_input = x_.get();
  if (mlp_) {
    const Layer& l1 = layout_.layers[0];
    last_input = dropout_ ? h_.get() : a_.get();
    LtProduct forward{"relu(x*W1 + b1)"};
    forward.m = batch, forward.n = l1.out, forward.k = l1.in;
    forward.a = x_.get(), forward.b = weights(l1.w), forward.c = a_.get();
    forward.precision = precision, forward.c_bf16 = bf16_;
    forward.epilogue = LtEpilogue::kReluBias;
    forward.bias = const_cast<void*>(weights(l1.b));
    forward_hidden_ = plan(forward);

    LtProduct dh{"dh = dlogits*W2^T"};
    dh.transpose_b = true;
    dh.m = batch, dh.n = l1.out, dh.k = out.out;
    dh.a = dlogits_.get(), dh.b = weights(out.w), dh.c = dh_.get();
    dh.precision = precision;
    hidden_grad_ = plan(dh);

    LtProduct dw1{"dW1 = x^T*dz, db1"};
    dw1.transpose_a = true;
    dw1.m = l1.in, dw1.n = l1.out, dw1.k = batch;
    dw1.a = x_.get(), dw1.b = dz_.get(), dw1.c = grads_.get() + l1.w;
    dw1.precision = precision;
    dw1.epilogue = LtEpilogue::kBiasGradient;
    dw1.bias = grads_.get() + l1.b;
    input_grad_ = plan(dw1);
  }
  LtProduct logits{"h*W2 + b2"};
  logits.m = batch, logits.n = out.out, logits.k = out.in;
  logits.a = last_input, logits.b = weights(out.w), logits.c = logits_.get();
  logits.precision = precision;
  logits.epilogue = LtEpilogue::kBias;
  logits.bias = params_.get() + out.b;  // fp32, like the logits
  forward_logits_ = plan(logits);

  LtProduct dw2{"dW2 = h^T*dlogits, db2"};
  dw2.transpose_a = true;
  dw2.m = out.in, dw2.n = out.out, dw2.k = batch;
  dw2.a = last_input, dw2.b = dlogits_.get(), dw2.c = grads_.get() + out.w;
  dw2.precision = precision;
  dw2.epilogue = LtEpilogue::kBiasGradient;
  dw2.bias = grads_.get() + out.b;
  output_grad_ = plan(dw2);

  const std::pair<int, const DeviceBuffer<std::uint8_t>*> splits[2] = {
      {data.test.count, &test_x_}, {data.validation.count, &validation_x_}};
  for (int i = 0; i < 2; ++i) {
    const int count = splits[i].first;
    if (count == 0) continue;  // evaluate() returns before recording
    const void* input = splits[i].second->get();
    if (mlp_) {
      const Layer& l1 = layout_.layers[0];
      LtProduct hidden{"eval relu(x*W1 + b1)"};
      hidden.m = count, hidden.n = l1.out, hidden.k = l1.in;
      hidden.a = input, hidden.b = weights(l1.w), hidden.c = eval_hidden_.get();
      hidden.precision = precision, hidden.c_bf16 = bf16_;
      hidden.epilogue = LtEpilogue::kReluBias;
      hidden.bias = const_cast<void*>(weights(l1.b));
      eval_hidden_product_[i] = plan(hidden);
      input = eval_hidden_.get();
    }
    LtProduct eval{"eval h*W2 + b2"};
    eval.m = count, eval.n = out.out, eval.k = out.in;
    eval.a = input, eval.b = weights(out.w), eval.c = eval_logits_.get();
    eval.precision = precision;
    eval.epilogue = LtEpilogue::kBias;
    eval.bias = params_.get() + out.b;
    eval_logits_product_[i] = plan(eval);
  }
}

// One training step in the CPU reference's order (train/cpu_backend.cpp): forward, loss,
// backward, update (the phase map in cublas_backend.h). Each product or kernel is one op() (named
// for a traced step).
void CublasBackend::record_step(cudaStream_t s) {
  const int batch = config_.batch_size;
  with_storage(bf16_, [&](auto* type) {
    using T = std::remove_pointer_t<decltype(type)>;
    op("gather_batch", s, [&] {
      k::gather_batch(train_images_.get(), train_labels_.get(), orders_.get(), train_count_,
                      step_.get(), batch, kImagePixels, as<T>(x_), y_.get(), s);
    });
    if (mlp_) {
      op("cublasLtMatmul relu(x*W1 + b1)", s, [&] { forward_hidden_.run(s); });
      if (dropout_) {
        op("dropout_forward", s, [&] {
          k::dropout_forward(as<T>(a_), as<T>(h_), a_.size() / sizeof(T), config_.keep_prob,
                             config_.seed, step_.get(), s);
        });
      }
    }
    op("cublasLtMatmul h*W2 + b2", s, [&] { forward_logits_.run(s); });
    op("softmax_nll", s, [&] {
      k::softmax_nll(logits_.get(), y_.get(), row_loss_.get(), row_correct_.get(), as<T>(dlogits_),
                     batch, kClasses, step_.get(), s);
    });
    op("cublasLtMatmul dW2 = h^T*dlogits, db2", s, [&] { output_grad_.run(s); });
    if (mlp_) {
      op("cublasLtMatmul dh = dlogits*W2^T", s, [&] { hidden_grad_.run(s); });
      op("relu_dropout_backward", s, [&] {
        const T* h = as<T>(dropout_ ? h_ : a_);
        k::relu_dropout_backward(dh_.get(), h, as<T>(dz_), dh_.size(), config_.keep_prob, s);
      });
      op("cublasLtMatmul dW1 = x^T*dz, db1", s, [&] { input_grad_.run(s); });
    }
  });
  // Update: Adam over every parameter, t = the counted step (and the products' bf16 copy).
  op("adam_update", s, [&] {
    k::adam_update(params_.get(), grads_.get(), adam_m_.get(), adam_v_.get(), layout_.total,
                   config_.learning_rate, kAdamBeta1, kAdamBeta2, kAdamEpsilon, step_.get(), s,
                   bf16_ ? params_bf16_.get() : nullptr);
  });
  record_step_metrics(s);
}

void CublasBackend::record_eval(cudaStream_t s, EvalSplit split, float* row_loss) {
  const int i = split == EvalSplit::kTest ? 0 : 1;
  if (mlp_) eval_hidden_product_[i].run(s);
  eval_logits_product_[i].run(s);
  k::count_correct(eval_logits_.get(),
                   split == EvalSplit::kTest ? test_labels_.get() : validation_labels_.get(),
                   split_count(split), kClasses, correct_.get(), row_loss, s);
}

}  // namespace mnist
