#include "gpu/cublas_backend.h"

#include "kernels/baseline/adam.h"
#include "kernels/baseline/batch.h"
#include "kernels/baseline/dropout.h"
#include "kernels/baseline/nll.h"
#include "kernels/softmax_xent.h"

namespace mnist {

namespace k = kernels;

void sgemm_row_major(cublasHandle_t h, bool transpose_a, bool transpose_b, int m, int n, int k,
                     const float* a, const float* b, float* c, float beta) {
  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T, and a row-major matrix read
  // column-major is its transpose: so pass B first, with the same transpose flags.
  const float alpha = 1.0f;
  const int lda = transpose_a ? m : k;  // row-major leading dimensions of the stored matrices
  const int ldb = transpose_b ? k : n;
  MNIST_CUBLAS_CHECK(cublasSgemm(h, transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                 transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &alpha, b, ldb,
                                 a, lda, &beta, c, n));
}

CublasBackend::CublasBackend(const TrainConfig& config, const MnistData& data,
                             std::vector<float> initial_params)
    : GpuBackendBase(config, data, initial_params),
      cublas_(stream_.get()),
      cudnn_(stream_.get()),
      batch_hidden_(1, 1, config.batch_size, std::max(layout_.hidden(), 1)),
      batch_classes_(config.batch_size, kClasses),
      test_hidden_(1, 1, data.test.count, std::max(layout_.hidden(), 1)),
      test_classes_(data.test.count, kClasses),
      train_images_(data.train.images),
      train_labels_(data.train.labels),
      test_labels_(data.test.labels),
      test_x_(std::size_t(data.test.count) * kImagePixels),
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
      eval_hidden_(std::size_t(data.test.count) * std::max(layout_.hidden(), 1)),
      eval_logits_(std::size_t(data.test.count) * kClasses),
      ones_(std::vector<float>(std::max(config.batch_size, data.test.count), 1.0f)) {
  DeviceBuffer<std::uint8_t> test_bytes(data.test.images);
  k::bytes_to_unit_float(test_bytes.get(), test_x_.get(), test_bytes.size(), stream_.get());
  synchronize();
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
// backward, update; library calls wherever a library has the op.
void CublasBackend::record_step(cudaStream_t s) {
  const int batch = config_.batch_size;
  const float one = 1.0f, zero = 0.0f;
  float* p = params_.get();
  float* g = grads_.get();
  cublasHandle_t blas = cublas_.get();
  cudnnHandle_t dnn = cudnn_.get();
  // Forward: x = the gathered batch; h = dropout(relu(x W1 + b1)) (mlp); logits = h W2 + b2.
  k::gather_batch(train_images_.get(), train_labels_.get(), orders_.get(), train_count_,
                  step_.get(), batch, kImagePixels, x_.get(), y_.get(), s);
  const Layer& out = layout_.layers.back();
  const float* last_input = x_.get();
  const bool mlp = layout_.layers.size() == 2;
  if (mlp) {
    const Layer& l1 = layout_.layers[0];
    sgemm_row_major(blas, false, false, batch, l1.out, l1.in, x_.get(), p + l1.w, z_.get());
    bias_add(batch, l1.out, p + l1.b, z_.get());
    MNIST_CUDNN_CHECK(cudnnActivationForward(dnn, relu_.get(), &one, batch_hidden_.get(), z_.get(),
                                             &zero, batch_hidden_.get(), a_.get()));
    k::dropout_forward(a_.get(), h_.get(), h_.size(), config_.keep_prob, config_.seed, step_.get(),
                       s);
    last_input = h_.get();
  }
  sgemm_row_major(blas, false, false, batch, out.out, out.in, last_input, p + out.w, logits_.get());
  bias_add(batch, out.out, p + out.b, logits_.get());
  // Loss: log-softmax (cuDNN), NLL and its gradient (counts the step), dlogits (cuDNN).
  MNIST_CUDNN_CHECK(cudnnSoftmaxForward(dnn, CUDNN_SOFTMAX_LOG, CUDNN_SOFTMAX_MODE_INSTANCE, &one,
                                        batch_classes_.get(), logits_.get(), &zero,
                                        batch_classes_.get(), logp_.get()));
  k::nll_from_log_softmax(logp_.get(), y_.get(), row_loss_.get(), dlogp_.get(), batch, kClasses,
                          step_.get(), s);
  MNIST_CUDNN_CHECK(cudnnSoftmaxBackward(
      dnn, CUDNN_SOFTMAX_LOG, CUDNN_SOFTMAX_MODE_INSTANCE, &one, batch_classes_.get(), logp_.get(),
      batch_classes_.get(), dlogp_.get(), &zero, batch_classes_.get(), dlogits_.get()));
  // Backward: [dW2; db2] = [h; 1]^T dlogits, then through W2, dropout and ReLU to [dW1; db1].
  sgemm_row_major(blas, true, false, out.in, out.out, batch, last_input, dlogits_.get(), g + out.w);
  bias_grad(batch, out.out, dlogits_.get(), g + out.b);
  if (mlp) {
    const Layer& l1 = layout_.layers[0];
    sgemm_row_major(blas, false, true, batch, l1.out, out.out, dlogits_.get(), p + out.w,
                    dh_.get());
    // Dropout's backward is ours (the mask); ReLU's backward is cuDNN's.
    k::relu_dropout_backward(dh_.get(), h_.get(), da_.get(), da_.size(), config_.keep_prob, s);
    MNIST_CUDNN_CHECK(cudnnActivationBackward(dnn, relu_.get(), &one, batch_hidden_.get(), a_.get(),
                                              batch_hidden_.get(), da_.get(), batch_hidden_.get(),
                                              z_.get(), &zero, batch_hidden_.get(), dz_.get()));
    sgemm_row_major(blas, true, false, l1.in, l1.out, batch, x_.get(), dz_.get(), g + l1.w);
    bias_grad(batch, l1.out, dz_.get(), g + l1.b);
  }
  // Update: Adam over every parameter, t = the counted step.
  k::adam_update(p, g, adam_m_.get(), adam_v_.get(), layout_.total, config_.learning_rate,
                 kAdamBeta1, kAdamBeta2, kAdamEpsilon, step_.get(), s);
}

void CublasBackend::record_eval(cudaStream_t s) {
  const float one = 1.0f, zero = 0.0f;
  const float* p = params_.get();
  MNIST_CUDA_CHECK(cudaMemsetAsync(correct_.get(), 0, sizeof(int), s));
  const float* input = test_x_.get();
  if (layout_.layers.size() == 2) {
    const Layer& l1 = layout_.layers[0];
    sgemm_row_major(cublas_.get(), false, false, test_count_, l1.out, l1.in, input, p + l1.w,
                    eval_hidden_.get());
    bias_add(test_count_, l1.out, p + l1.b, eval_hidden_.get());
    MNIST_CUDNN_CHECK(cudnnActivationForward(cudnn_.get(), relu_.get(), &one, test_hidden_.get(),
                                             eval_hidden_.get(), &zero, test_hidden_.get(),
                                             eval_hidden_.get()));
    input = eval_hidden_.get();
  }
  const Layer& out = layout_.layers.back();
  sgemm_row_major(cublas_.get(), false, false, test_count_, out.out, out.in, input, p + out.w,
                  eval_logits_.get());
  bias_add(test_count_, out.out, p + out.b, eval_logits_.get());
  k::count_correct(eval_logits_.get(), test_labels_.get(), test_count_, out.out, correct_.get(), s);
}

}  // namespace mnist
