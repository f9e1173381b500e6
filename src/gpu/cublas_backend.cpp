#include "gpu/cublas_backend.h"

#include <algorithm>
#include <utility>

#include "kernels/baseline/adam.h"
#include "kernels/baseline/batch.h"
#include "kernels/baseline/dropout.h"
#include "kernels/baseline/nll.h"
#include "kernels/softmax_xent.h"

namespace mnist {

namespace k = kernels;

void sgemm_row_major(cublasHandle_t h, bool transpose_a, bool transpose_b, int m, int n, int k,
                     const float* a, const float* b, float* c, float beta, Precision precision) {
  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T, and a row-major matrix read
  // column-major is its transpose: so pass B first, with the same transpose flags.
  const float alpha = 1.0f;
  const int lda = transpose_a ? m : k;  // row-major leading dimensions of the stored matrices
  const int ldb = transpose_b ? k : n;
  const cublasOperation_t op_b = transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_a = transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  if (precision == Precision::kFp32) {
    MNIST_CUBLAS_CHECK(
        lib::cublas().cublasSgemm(h, op_b, op_a, n, m, k, &alpha, b, ldb, a, lda, &beta, c, n));
    return;
  }
  const cublasComputeType_t compute =
      precision == Precision::kTf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F_FAST_16BF;
  MNIST_CUBLAS_CHECK(lib::cublas().cublasGemmEx(h, op_b, op_a, n, m, k, &alpha, b, CUDA_R_32F, ldb,
                                                a, CUDA_R_32F, lda, &beta, c, CUDA_R_32F, n,
                                                compute, CUBLAS_GEMM_DEFAULT));
}

CublasBackend::CublasBackend(const TrainConfig& config, const MnistData& data,
                             std::vector<float> initial_params)
    : GpuBackendBase(config, data, initial_params),
      cublas_(stream_.get()),
      cudnn_(stream_.get()),
      batch_hidden_(1, 1, config.batch_size, std::max(layout_.hidden(), 1)),
      batch_classes_(config.batch_size, kClasses),
      test_hidden_(1, 1, std::max(data.test.count, 1), std::max(layout_.hidden(), 1)),
      validation_hidden_(1, 1, std::max(data.validation.count, 1), std::max(layout_.hidden(), 1)),
      test_labels_(data.test.labels),
      validation_labels_(data.validation.labels),
      test_x_(std::size_t(data.test.count) * kImagePixels),
      validation_x_(std::size_t(data.validation.count) * kImagePixels),
      grads_(layout_.total),
      x_(std::size_t(config.batch_size) * kImagePixels),
      z_(batch_hidden_size()),
      a_(batch_hidden_size()),
      h_(batch_hidden_size()),
      logits_(std::size_t(config.batch_size) * kClasses),
      logp_(std::size_t(config.batch_size) * kClasses),
      dlogp_(std::size_t(config.batch_size) * kClasses),
      dlogits_(std::size_t(config.batch_size) * kClasses),
      dh_(batch_hidden_size()),
      da_(batch_hidden_size()),
      dz_(batch_hidden_size()),
      y_(config.batch_size),
      eval_hidden_(std::size_t(std::max(data.test.count, data.validation.count)) *
                   std::max(layout_.hidden(), 1)),
      eval_logits_(std::size_t(std::max(data.test.count, data.validation.count)) * kClasses),
      ones_(std::vector<float>(
          std::max({config.batch_size, data.test.count, data.validation.count}), 1.0f)) {
  for (const auto& [bytes, floats] : {std::pair{&data.test.images, &test_x_},
                                      std::pair{&data.validation.images, &validation_x_}}) {
    if (bytes->empty()) continue;
    DeviceBuffer<std::uint8_t> staged(*bytes);
    k::bytes_to_unit_float(staged.get(), floats->get(), staged.size(), stream_.get());
    synchronize();
  }
}

std::size_t CublasBackend::batch_hidden_size() const {
  return std::size_t(config_.batch_size) * std::max(layout_.hidden(), 1);
}

// Y[rows, n] += 1[rows] * bias[n]^T: a rank-1 cuBLAS product (the vendor way to broadcast a bias).
void CublasBackend::bias_add(int rows, int n, const float* bias, float* y) {
  sgemm_row_major(cublas_.get(), false, false, rows, n, 1, ones_.get(), bias, y, 1.0f);
}

// grad[n] = 1[rows]^T * dz[rows, n]: the bias gradient as a cuBLAS product.
void CublasBackend::bias_grad(int rows, int n, const float* dz, float* grad) {
  sgemm_row_major(cublas_.get(), true, false, 1, n, rows, ones_.get(), dz, grad);
}

// One training step in the CPU reference's order (train/cpu_backend.cpp): forward, loss,
// backward, update; library calls wherever a library has the op. Each library call or kernel is
// one op() (named for a traced step).
void CublasBackend::record_step(cudaStream_t s) {
  const int batch = config_.batch_size;
  const float one = 1.0f, zero = 0.0f;
  float* p = params_.get();
  float* g = grads_.get();
  cublasHandle_t blas = cublas_.get();
  cudnnHandle_t dnn = cudnn_.get();
  // Forward: x = the gathered batch; h = dropout(relu(x W1 + b1)) (mlp); logits = h W2 + b2.
  op("gather_batch", s, [&] {
    k::gather_batch(train_images_.get(), train_labels_.get(), orders_.get(), train_count_,
                    step_.get(), batch, kImagePixels, x_.get(), y_.get(), s);
  });
  const Layer& out = layout_.layers.back();
  const float* last_input = x_.get();
  const bool mlp = layout_.layers.size() == 2;
  if (mlp) {
    const Layer& l1 = layout_.layers[0];
    op("cublasSgemm x*W1", s, [&] {
      sgemm_row_major(blas, false, false, batch, l1.out, l1.in, x_.get(), p + l1.w, z_.get(), 0.0f,
                      config_.precision);
    });
    op("cublasSgemm +b1", s, [&] { bias_add(batch, l1.out, p + l1.b, z_.get()); });
    op("cudnnActivationForward relu", s, [&] {
      MNIST_CUDNN_CHECK(lib::cudnn().cudnnActivationForward(dnn, relu_.get(), &one,
                                                            batch_hidden_.get(), z_.get(), &zero,
                                                            batch_hidden_.get(), a_.get()));
    });
    op("dropout_forward", s, [&] {
      k::dropout_forward(a_.get(), h_.get(), h_.size(), config_.keep_prob, config_.seed,
                         step_.get(), s);
    });
    last_input = h_.get();
  }
  op("cublasSgemm h*W2", s, [&] {
    sgemm_row_major(blas, false, false, batch, out.out, out.in, last_input, p + out.w,
                    logits_.get());
  });
  op("cublasSgemm +b2", s, [&] { bias_add(batch, out.out, p + out.b, logits_.get()); });
  // Loss: log-softmax (cuDNN), NLL and its gradient (counts the step), dlogits (cuDNN).
  op("cudnnSoftmaxForward log", s, [&] {
    MNIST_CUDNN_CHECK(lib::cudnn().cudnnSoftmaxForward(
        dnn, CUDNN_SOFTMAX_LOG, CUDNN_SOFTMAX_MODE_INSTANCE, &one, batch_classes_.get(),
        logits_.get(), &zero, batch_classes_.get(), logp_.get()));
  });
  op("nll_from_log_softmax", s, [&] {
    k::nll_from_log_softmax(logp_.get(), y_.get(), row_loss_.get(), row_correct_.get(),
                            dlogp_.get(), batch, kClasses, step_.get(), s);
  });
  op("cudnnSoftmaxBackward log", s, [&] {
    MNIST_CUDNN_CHECK(lib::cudnn().cudnnSoftmaxBackward(
        dnn, CUDNN_SOFTMAX_LOG, CUDNN_SOFTMAX_MODE_INSTANCE, &one, batch_classes_.get(),
        logp_.get(), batch_classes_.get(), dlogp_.get(), &zero, batch_classes_.get(),
        dlogits_.get()));
  });
  // Backward: [dW2; db2] = [h; 1]^T dlogits, then through W2, dropout and ReLU to [dW1; db1].
  op("cublasSgemm dW2", s, [&] {
    sgemm_row_major(blas, true, false, out.in, out.out, batch, last_input, dlogits_.get(),
                    g + out.w);
  });
  op("cublasSgemm db2", s, [&] { bias_grad(batch, out.out, dlogits_.get(), g + out.b); });
  if (mlp) {
    const Layer& l1 = layout_.layers[0];
    op("cublasSgemm dh", s, [&] {
      sgemm_row_major(blas, false, true, batch, l1.out, out.out, dlogits_.get(), p + out.w,
                      dh_.get());
    });
    // Dropout's backward is ours (the mask); ReLU's backward is cuDNN's.
    op("relu_dropout_backward", s, [&] {
      k::relu_dropout_backward(dh_.get(), h_.get(), da_.get(), da_.size(), config_.keep_prob, s);
    });
    op("cudnnActivationBackward relu", s, [&] {
      MNIST_CUDNN_CHECK(lib::cudnn().cudnnActivationBackward(
          dnn, relu_.get(), &one, batch_hidden_.get(), a_.get(), batch_hidden_.get(), da_.get(),
          batch_hidden_.get(), z_.get(), &zero, batch_hidden_.get(), dz_.get()));
    });
    op("cublasSgemm dW1", s, [&] {
      sgemm_row_major(blas, true, false, l1.in, l1.out, batch, x_.get(), dz_.get(), g + l1.w, 0.0f,
                      config_.precision);
    });
    op("cublasSgemm db1", s, [&] { bias_grad(batch, l1.out, dz_.get(), g + l1.b); });
  }
  // Update: Adam over every parameter, t = the counted step.
  op("adam_update", s, [&] {
    k::adam_update(p, g, adam_m_.get(), adam_v_.get(), layout_.total, config_.learning_rate,
                   kAdamBeta1, kAdamBeta2, kAdamEpsilon, step_.get(), s);
  });
  record_step_metrics(s);
}

void CublasBackend::record_eval(cudaStream_t s, EvalSplit split, float* row_loss) {
  const float one = 1.0f, zero = 0.0f;
  const float* p = params_.get();
  const bool test = split == EvalSplit::kTest;
  const int count = split_count(split);
  const TensorDesc& hidden_desc = test ? test_hidden_ : validation_hidden_;
  const float* input = test ? test_x_.get() : validation_x_.get();
  if (layout_.layers.size() == 2) {
    const Layer& l1 = layout_.layers[0];
    sgemm_row_major(cublas_.get(), false, false, count, l1.out, l1.in, input, p + l1.w,
                    eval_hidden_.get(), 0.0f, config_.precision);
    bias_add(count, l1.out, p + l1.b, eval_hidden_.get());
    MNIST_CUDNN_CHECK(lib::cudnn().cudnnActivationForward(
        cudnn_.get(), relu_.get(), &one, hidden_desc.get(), eval_hidden_.get(), &zero,
        hidden_desc.get(), eval_hidden_.get()));
    input = eval_hidden_.get();
  }
  const Layer& out = layout_.layers.back();
  sgemm_row_major(cublas_.get(), false, false, count, out.out, out.in, input, p + out.w,
                  eval_logits_.get());
  bias_add(count, out.out, p + out.b, eval_logits_.get());
  k::count_correct(eval_logits_.get(), test ? test_labels_.get() : validation_labels_.get(), count,
                   out.out, correct_.get(), row_loss, s);
}

}  // namespace mnist
