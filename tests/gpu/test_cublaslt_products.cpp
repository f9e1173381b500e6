// The vendor baseline's parts on the GPU: each cuBLASLt product it plans (src/gpu/vendor.h), one
// per epilogue and shape of the step and the evaluation, against float64 on the CPU at the model's
// odd shapes, in fp32, TF32 and BF16, outputs poisoned with NaN before the call; its loss kernel
// (kernels/baseline/nll.h) in both storages; and the bf16 copy of the parameters that its products
// read, refreshed when the state is set.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "app/backends.h"
#include "gpu/vendor.h"
#include "kernels/baseline/nll.h"
#include "support/gpu_test_util.h"
#include "train/cpu_backend.h"
#include "train/epochs.h"

namespace mnist {
namespace {

using gpu_test::close;
using gpu_test::poisoned;
using gpu_test::random_floats;

bool tensor_cores_present() {
  int device = 0, major = 0;
  return cudaGetDevice(&device) == cudaSuccess &&
         cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) == cudaSuccess &&
         major >= 8;
}

// bf16 on the host, bit for bit: round to nearest even (finite values only), and back.
std::uint16_t bf16_bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return static_cast<std::uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
float from_bf16_bits(std::uint16_t b) {
  const std::uint32_t u = std::uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
float round_bf16(float f) { return from_bf16_bits(bf16_bits(f)); }

// A matrix on the device in fp32 or bf16, with the host values it holds (bf16: already rounded,
// so the float64 reference sees exactly what the product reads).
struct Stored {
  std::vector<float> values;
  DeviceBuffer<float> fp32;
  DeviceBuffer<std::uint16_t> bf16;
  void* get() const { return bf16.size() ? static_cast<void*>(bf16.get()) : fp32.get(); }
};

Stored store(std::vector<float> values, bool as_bf16) {
  Stored s;
  if (as_bf16) {
    std::vector<std::uint16_t> bits(values.size());
    for (std::size_t i = 0; i < values.size(); ++i) {
      bits[i] = bf16_bits(values[i]);
      values[i] = from_bf16_bits(bits[i]);
    }
    s.bf16 = DeviceBuffer<std::uint16_t>(bits);
  } else {
    s.fp32 = DeviceBuffer<float>(values);
  }
  s.values = std::move(values);
  return s;
}

// An output of `count` values poisoned with NaN (all bits set, NaN in both storages).
Stored output(std::size_t count, bool as_bf16) {
  Stored s;
  if (as_bf16) {
    s.bf16 = poisoned<std::uint16_t>(count);
  } else {
    s.fp32 = poisoned<float>(count);
  }
  return s;
}

std::vector<float> download(const Stored& s) {
  if (!s.bf16.size()) return s.fp32.download();
  const std::vector<std::uint16_t> bits = s.bf16.download();
  std::vector<float> v(bits.size());
  for (std::size_t i = 0; i < bits.size(); ++i) v[i] = from_bf16_bits(bits[i]);
  return v;
}

// One product of the baseline, row-major C[m, n] = op(A) op(B) with its epilogue.
struct Case {
  const char* what;
  bool transpose_a, transpose_b;
  int m, n, k;
  LtEpilogue epilogue;
  bool c_bf16;  // C stored as bf16 when the precision is bf16 (the hidden layer's output)
};

// The step's and the evaluation's products at odd batches (37, 129; 1 and 7 as the backend tests
// train; 2048 for a long reduction), the mlp's and the softmax model's. (The evaluation's 10,000
// rows: tests/gpu/test_backends.cpp, through the backend.)
const Case kCases[] = {
    {"relu(x*W1 + b1), 37 rows", false, false, 37, 500, 784, LtEpilogue::kReluBias, true},
    {"relu(x*W1 + b1), 1 row, 512 units", false, false, 1, 512, 784, LtEpilogue::kReluBias, true},
    {"h*W2 + b2, 129 rows", false, false, 129, 10, 500, LtEpilogue::kBias, false},
    {"h*W2 + b2, 7 rows", false, false, 7, 10, 500, LtEpilogue::kBias, false},
    {"x*W + b, softmax model, 257 rows", false, false, 257, 10, 784, LtEpilogue::kBias, false},
    {"dh = dlogits*W2^T, 129 rows", false, true, 129, 500, 10, LtEpilogue::kNone, false},
    {"dW1 = x^T*dz, db1, over 37 rows", true, false, 784, 500, 37, LtEpilogue::kBiasGradient,
     false},
    {"dW1 = x^T*dz, db1, over 1 row, 512 units", true, false, 784, 512, 1,
     LtEpilogue::kBiasGradient, false},
    {"dW1 = x^T*dz, db1, over 2048 rows", true, false, 784, 500, 2048, LtEpilogue::kBiasGradient,
     false},
    {"dW2 = h^T*dlogits, db2, over 129 rows", true, false, 500, 10, 129, LtEpilogue::kBiasGradient,
     false},
};

// Normalised error bounds (gpu_test::close). fp32: fp32 sums over k <= 2048 terms stay near
// sqrt(k) 2^-24. TF32: each input rounded (or truncated) to 10 mantissa bits, so each term errs by
// up to 2^-9 of itself: 2^-8 bounds the sum's normalised error with room. BF16: the operands are
// stored as bf16 (exact inputs here), the sums fp32 on the tensor cores, 1e-4 with room for their
// accumulation order; a bf16 output adds its own rounding (2^-9 at most), so 2^-8. A mislaid
// operand or transpose errs by O(1).
double bound(Precision p, bool bf16_output) {
  switch (p) {
    case Precision::kFp32:
      return 1e-5;
    case Precision::kTf32:
      return std::ldexp(1.0, -8);
    case Precision::kBf16:
      return bf16_output ? std::ldexp(1.0, -8) : 1e-4;
  }
  return 0;
}

class LtProducts : public ::testing::TestWithParam<Precision> {};
INSTANTIATE_TEST_SUITE_P(Precisions, LtProducts,
                         ::testing::Values(Precision::kFp32, Precision::kTf32, Precision::kBf16),
                         [](const ::testing::TestParamInfo<Precision>& p) {
                           return std::string(precision_name(p.param));
                         });

TEST_P(LtProducts, EachEpilogueMatchesFloat64AtTheModelsShapes) {
  REQUIRE_GPU();
  const Precision precision = GetParam();
  if (precision != Precision::kFp32 && !tensor_cores_present())
    GTEST_SKIP() << "TF32/BF16 need compute capability 8.0 or newer";
  const bool bf16 = precision == Precision::kBf16;
  CublasLtHandle lt;
  DeviceBuffer<std::uint8_t> workspace(kLtWorkspaceBytes);
  std::mt19937 rng(23);
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.what);
    const bool c_bf16 = bf16 && c.c_bf16;
    const bool bias_read = c.epilogue == LtEpilogue::kBias || c.epilogue == LtEpilogue::kReluBias;
    const bool bias_grad = c.epilogue == LtEpilogue::kBiasGradient;
    const Stored a = store(random_floats(std::size_t(c.m) * c.k, rng), bf16);
    const Stored b = store(random_floats(std::size_t(c.k) * c.n, rng), bf16);
    // The bias has C's type (cuBLASLt's rule); a bias gradient likewise.
    const Stored bias = bias_read ? store(random_floats(c.n, rng), c_bf16) : Stored{};
    Stored out = output(std::size_t(c.m) * c.n, c_bf16);
    Stored grad = bias_grad ? output(c.n, false) : Stored{};

    // float64, from op(A) as m rows of k and op(B)^T as n rows of k: A[i][l] is a[i * k + l]
    // (a[l * m + i] transposed), B[l][j] is b[l * n + j] (b[j * k + l] transposed).
    std::vector<double> rows_a(std::size_t(c.m) * c.k), cols_b(std::size_t(c.n) * c.k);
    for (int l = 0; l < c.k; ++l) {
      for (int i = 0; i < c.m; ++i)
        rows_a[std::size_t(i) * c.k + l] =
            a.values[c.transpose_a ? std::size_t(l) * c.m + i : std::size_t(i) * c.k + l];
      for (int j = 0; j < c.n; ++j)
        cols_b[std::size_t(j) * c.k + l] =
            b.values[c.transpose_b ? std::size_t(j) * c.k + l : std::size_t(l) * c.n + j];
    }
    std::vector<double> want(std::size_t(c.m) * c.n), want_grad(bias_grad ? c.n : 0, 0.0);
    for (int i = 0; i < c.m; ++i) {
      for (int j = 0; j < c.n; ++j) {
        const double* x = rows_a.data() + std::size_t(i) * c.k;
        const double* y = cols_b.data() + std::size_t(j) * c.k;
        double sum = bias_read ? bias.values[j] : 0.0;
        for (int l = 0; l < c.k; ++l) sum += x[l] * y[l];
        if (c.epilogue == LtEpilogue::kReluBias) sum = std::max(sum, 0.0);
        want[std::size_t(i) * c.n + j] = sum;
      }
    }
    for (int j = 0; j < c.n && bias_grad; ++j)
      for (int l = 0; l < c.k; ++l) want_grad[j] += cols_b[std::size_t(j) * c.k + l];

    // A bias gradient both fused (BGRADA, which the baseline expects on this GPU) and as the
    // second product that stands in where cuBLASLt has no BGRADA.
    for (const bool fuse : {true, false}) {
      if (!fuse && !bias_grad) continue;
      SCOPED_TRACE(fuse ? "fused" : "bias gradient as a second product");
      MNIST_CUDA_CHECK(cudaMemset(out.get(), 0xff, std::size_t(c.m) * c.n * (c_bf16 ? 2 : 4)));
      if (bias_grad) MNIST_CUDA_CHECK(cudaMemset(grad.get(), 0xff, c.n * sizeof(float)));
      LtProduct p;
      p.name = c.what;
      p.transpose_a = c.transpose_a, p.transpose_b = c.transpose_b;
      p.m = c.m, p.n = c.n, p.k = c.k;
      p.a = a.get(), p.b = b.get(), p.c = out.get();
      p.precision = precision, p.c_bf16 = c_bf16;
      p.epilogue = c.epilogue;
      p.bias = bias_read ? bias.get() : bias_grad ? grad.get() : nullptr;
      p.fuse_bias_gradient = fuse;
      const LtMatmul product(lt.get(), p, workspace.get(), workspace.size());
      EXPECT_EQ(product.fused(), fuse) << "cuBLASLt offers no fused epilogue for this product";
      product.run(nullptr);
      MNIST_CUDA_CHECK(cudaDeviceSynchronize());
      const std::vector<float> got = download(out);
      EXPECT_TRUE(close(got, want, bound(precision, c_bf16)));
      std::vector<float> got_grad;
      if (bias_grad) {
        got_grad = download(grad);
        EXPECT_TRUE(close(got_grad, want_grad, bound(precision, false))) << "bias gradient";
      }
      // Again into freshly poisoned outputs: the same bits (the baseline's training must
      // reproduce).
      MNIST_CUDA_CHECK(cudaMemset(out.get(), 0xff, got.size() * (c_bf16 ? 2 : 4)));
      if (bias_grad) MNIST_CUDA_CHECK(cudaMemset(grad.get(), 0xff, c.n * sizeof(float)));
      product.run(nullptr);
      MNIST_CUDA_CHECK(cudaDeviceSynchronize());
      EXPECT_TRUE(download(out) == got) << "a second run differs";
      if (bias_grad) {
        EXPECT_TRUE(download(grad) == got_grad) << "a second run's bias gradient differs";
      }
    }
  }
}

// A product whose operands do not fit its epilogue is refused before cuBLASLt sees it: BGRADA
// reduces cuBLASLt's A (our B) only untransposed.
TEST(LtProductPlan, RefusesABiasGradientOfATransposedOperand) {
  REQUIRE_GPU();
  CublasLtHandle lt;
  DeviceBuffer<float> a(8 * 8), b(8 * 8), c(8 * 8), g(8);
  LtProduct p;
  p.name = "transposed";
  p.transpose_b = true;
  p.m = p.n = p.k = 8;
  p.a = a.get(), p.b = b.get(), p.c = c.get();
  p.epilogue = LtEpilogue::kBiasGradient;
  p.bias = g.get();
  EXPECT_THROW(LtMatmul(lt.get(), p, nullptr, 0), std::invalid_argument);
}

// The baseline's loss: logsumexp - z[label], the first maximum's hit, (softmax - onehot) / rows in
// the storage the backward products read, and the step counted (kernels/adam_rule.cuh).
TEST(BaselineSoftmaxNll, LossGradientAndStepInBothStorages) {
  REQUIRE_GPU();
  std::mt19937 rng(13);
  for (const bool bf16 : {false, true}) {
    for (const int m : {1, 37, 129}) {
      SCOPED_TRACE(std::string(bf16 ? "bf16" : "fp32") + " dlogits, rows " + std::to_string(m));
      const auto z = random_floats(std::size_t(m) * kClasses, rng, -8.0f, 8.0f);
      std::vector<std::uint8_t> y(m);
      for (auto& label : y) label = static_cast<std::uint8_t>(rng() % kClasses);
      const DeviceBuffer<float> dz(z);
      const DeviceBuffer<std::uint8_t> dy(y);
      auto loss = poisoned<float>(m);
      Stored dlogits = output(std::size_t(m) * kClasses, bf16);
      DeviceBuffer<std::uint8_t> hits(std::vector<std::uint8_t>(m, 7));
      DeviceBuffer<std::int64_t> step(std::vector<std::int64_t>{6});
      if (bf16) {
        kernels::softmax_nll(dz.get(), dy.get(), loss.get(), hits.get(),
                             reinterpret_cast<__nv_bfloat16*>(dlogits.get()), m, kClasses,
                             step.get(), nullptr);
      } else {
        kernels::softmax_nll(dz.get(), dy.get(), loss.get(), hits.get(), dlogits.fp32.get(), m,
                             kClasses, step.get(), nullptr);
      }
      MNIST_CUDA_CHECK(cudaDeviceSynchronize());
      EXPECT_EQ(step.download()[0], 7);
      std::vector<double> want_loss(m), want_grad(std::size_t(m) * kClasses);
      std::vector<std::uint8_t> want_hits(m);
      for (int r = 0; r < m; ++r) {
        const float* row = z.data() + std::size_t(r) * kClasses;
        int best = 0;
        for (int j = 1; j < kClasses; ++j) best = row[j] > row[best] ? j : best;
        double sum = 0;
        for (int j = 0; j < kClasses; ++j) sum += std::exp(double(row[j]) - row[best]);
        want_loss[r] = std::log(sum) + row[best] - row[y[r]];
        want_hits[r] = best == y[r];
        for (int j = 0; j < kClasses; ++j)
          want_grad[std::size_t(r) * kClasses + j] =
              (std::exp(double(row[j]) - row[best]) / sum - (j == y[r] ? 1.0 : 0.0)) / m;
      }
      EXPECT_TRUE(close(loss.download(), want_loss, 1e-5));
      EXPECT_EQ(hits.download(), want_hits);
      EXPECT_TRUE(close(download(dlogits), want_grad, bf16 ? std::ldexp(1.0, -8) : 1e-5));
    }
  }
}

// At --precision bf16 the products read a bf16 copy of the parameters: setting a state (a
// checkpoint's, here parameters the CPU trained) must reach it, or the evaluation would run on the
// initial parameters. The cross-entropy must follow the CPU's on the new parameters, within the
// bf16 products' error, and the two parameter sets must be far apart by that measure.
TEST(CublasBackendBf16, SettingTheStateReachesTheBf16Copy) {
  REQUIRE_GPU();
  if (!tensor_cores_present()) GTEST_SKIP() << "BF16 needs compute capability 8.0 or newer";
  const MnistData data = make_fake_data(3);
  TrainConfig c;
  c.seed = 77;
  const auto start = initial_parameters(make_layout(c.model, c.hidden_units), 8);
  CpuBackend cpu(c, data, start);
  const double initial_loss = cpu.evaluate(EvalSplit::kTest, true).cross_entropy;
  EpochFeeder epochs(cpu, c.seed, c.batch_size, data.train.count);
  for (int i = 0; i < 30; ++i) {
    epochs.before_step();
    cpu.train_step();
  }
  TrainConfig g = c;
  g.precision = Precision::kBf16;
  auto gpu = make_backend(BackendKind::kCublas, g, data, start);
  gpu->set_state(cpu.state());
  const double want = cpu.evaluate(EvalSplit::kTest, true).cross_entropy;
  const double got = gpu->evaluate(EvalSplit::kTest, true).cross_entropy;
  const double tolerance = 10 * std::ldexp(1.0, -8) * (1 + want);
  ASSERT_GT(std::fabs(initial_loss - want), 3 * tolerance) << "training did not move the loss";
  EXPECT_NEAR(got, want, tolerance);
}

}  // namespace
}  // namespace mnist
