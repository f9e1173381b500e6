// Times the cuDNN calls the `cublas` baseline backend makes, at the model's shapes, one by one
// (eager, CUDA events, median of 50 after 10 warm-ups), to see where its step time goes.
//   build: cmake --build --preset release --target cudnn_ops_probe
//   run:   build/release/bench/cudnn_ops_probe
#include <cublas_v2.h>
#include <cudnn.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <vector>

#define CK(x)                                                                     \
  do {                                                                            \
    auto rc = (x);                                                                \
    if (rc != 0) {                                                                \
      std::fprintf(stderr, "%s failed (%d) at line %d\n", #x, int(rc), __LINE__); \
      return 1;                                                                   \
    }                                                                             \
  } while (0)

static double median_us(cudaStream_t s, const std::function<void()>& op) {
  for (int i = 0; i < 10; ++i) op();
  std::vector<double> t;
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  for (int i = 0; i < 50; ++i) {
    cudaEventRecord(a, s);
    op();
    cudaEventRecord(b, s);
    cudaEventSynchronize(b);
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    t.push_back(ms * 1000.0);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

int main() {
  cudaStream_t s;
  CK(cudaStreamCreate(&s));
  cudnnHandle_t dnn;
  CK(cudnnCreate(&dnn));
  CK(cudnnSetStream(dnn, s));
  std::printf("cuDNN %zu\n", cudnnGetVersion());
  const float one = 1.0f, zero = 0.0f;
  for (int rows : {100, 1024, 8192}) {
    float *x, *y, *dy, *dx;
    const size_t n = size_t(rows) * 500;
    CK(cudaMalloc(reinterpret_cast<void**>(&x), n * 4));
    CK(cudaMalloc(reinterpret_cast<void**>(&y), n * 4));
    CK(cudaMalloc(reinterpret_cast<void**>(&dy), n * 4));
    CK(cudaMalloc(reinterpret_cast<void**>(&dx), n * 4));
    CK(cudaMemset(x, 0, n * 4));
    CK(cudaMemset(dy, 0, n * 4));
    cudnnTensorDescriptor_t image, rows_c, classes;
    CK(cudnnCreateTensorDescriptor(&image));
    CK(cudnnCreateTensorDescriptor(&rows_c));
    CK(cudnnCreateTensorDescriptor(&classes));
    CK(cudnnSetTensor4dDescriptor(image, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, 1, rows, 500));
    CK(cudnnSetTensor4dDescriptor(rows_c, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, rows, 500, 1, 1));
    CK(cudnnSetTensor4dDescriptor(classes, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, rows, 10, 1, 1));
    cudnnActivationDescriptor_t relu;
    CK(cudnnCreateActivationDescriptor(&relu));
    CK(cudnnSetActivationDescriptor(relu, CUDNN_ACTIVATION_RELU, CUDNN_NOT_PROPAGATE_NAN, 0.0));
    auto act_f = [&](cudnnTensorDescriptor_t d) {
      return median_us(s, [&] { cudnnActivationForward(dnn, relu, &one, d, x, &zero, d, y); });
    };
    auto act_b = [&](cudnnTensorDescriptor_t d) {
      return median_us(
          s, [&] { cudnnActivationBackward(dnn, relu, &one, d, y, d, dy, d, x, &zero, d, dx); });
    };
    const double sm_f = median_us(s, [&] {
      cudnnSoftmaxForward(dnn, CUDNN_SOFTMAX_LOG, CUDNN_SOFTMAX_MODE_INSTANCE, &one, classes, x,
                          &zero, classes, y);
    });
    const double sm_b = median_us(s, [&] {
      cudnnSoftmaxBackward(dnn, CUDNN_SOFTMAX_LOG, CUDNN_SOFTMAX_MODE_INSTANCE, &one, classes, y,
                           classes, dy, &zero, classes, dx);
    });
    cublasHandle_t blas;
    CK(cublasCreate(&blas));
    CK(cublasSetStream(blas, s));
    CK(cublasSetMathMode(blas, CUBLAS_PEDANTIC_MATH));
    // The baseline's bias broadcast (rank-1: Y += 1 * b^T) and bias gradient (1^T * dZ),
    // column-major.
    const double rank1 = median_us(s, [&] {
      cublasSgemm(blas, CUBLAS_OP_N, CUBLAS_OP_N, 500, rows, 1, &one, x, 500, dy, 1, &one, y, 500);
    });
    const double colsum = median_us(s, [&] {
      cublasSgemm(blas, CUBLAS_OP_N, CUBLAS_OP_T, 500, 1, rows, &one, dy, 500, x, 1, &zero, dx,
                  500);
    });
    std::printf("rows %5d: cuBLAS rank-1 bias add %8.1f us, bias-gradient product %8.1f us\n", rows,
                rank1, colsum);
    cublasDestroy(blas);
    std::printf(
        "rows %5d: relu fwd %8.1f us (1x1xRxC) %8.1f us (Rx500x1x1); relu bwd %8.1f / %8.1f us; "
        "log-softmax "
        "fwd %8.1f us, bwd %8.1f us\n",
        rows, act_f(image), act_f(rows_c), act_b(image), act_b(rows_c), sm_f, sm_b);
    cudaFree(x);
    cudaFree(y);
    cudaFree(dy);
    cudaFree(dx);
  }
  return 0;
}
