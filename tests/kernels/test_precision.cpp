// The tensor-core precisions (--precision tf32|bf16) of the GEMM kernel, element by element
// against a float64 reference, within a bound derived from the formats:
//   each operand is rounded once to the format (unit roundoff u: TF32 2^-11, BF16 2^-8), so each
//   product a*b carries a relative error of at most 2u + u^2 (the product itself is exact in the
//   tensor core); the accumulation adds at most 8 K 2^-24 of the terms' magnitude: tensor cores
//   do not round like a sequence of fp32 additions (they align to the largest exponent and may
//   truncate, about 5 K 2^-24 at worst: Fasi et al., "Numerical behavior of NVIDIA tensor cores",
//   PeerJ CS 2021). So |y - y_exact| <= (2u + u^2 + 8 K 2^-24) sum|a*b|. An error in a fragment's
//   layout is O(1) of sum|a*b|, never inside the bound; and the result must differ from fp32's
//   somewhere by more than a hundredth of u (the tensor cores really ran). Which rounding ran is
//   pinned down exactly by RoundsItsOperandsLikeTheFormat.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "kernels/gemm.h"
#include "support/gpu_test_util.h"

namespace mnist {
namespace {

using gpu_test::random_floats;

double unit_roundoff(Precision p) {
  return p == Precision::kTf32 ? std::ldexp(1.0, -11) : std::ldexp(1.0, -8);
}

bool tensor_cores_present() {
  int device = 0, major = 0;
  return cudaGetDevice(&device) == cudaSuccess &&
         cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) == cudaSuccess &&
         major >= 8;
}

#define REQUIRE_TENSOR_CORES() \
  REQUIRE_GPU();               \
  if (!tensor_cores_present()) GTEST_SKIP() << "TF32/BF16 need compute capability 8.0 or newer"

struct Reference {
  std::vector<double> exact, magnitude;  // sum a*b (+ bias) and sum |a*b| (+ |bias|)
};

// Y = X W + b, X m x k, W k x n, row-major.
Reference forward_reference(const std::vector<float>& x, const std::vector<float>& w,
                            const std::vector<float>& b, int m, int k, int n) {
  Reference r{std::vector<double>(std::size_t(m) * n), std::vector<double>(std::size_t(m) * n)};
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      double s = b[j], a = std::fabs(b[j]);
      for (int p = 0; p < k; ++p) {
        const double t = double(x[std::size_t(i) * k + p]) * w[std::size_t(p) * n + j];
        s += t;
        a += std::fabs(t);
      }
      r.exact[std::size_t(i) * n + j] = s;
      r.magnitude[std::size_t(i) * n + j] = a;
    }
  return r;
}

// Checks `got` element by element; returns the largest |got - fp32| / sum|a*b|, to show the
// precision was used.
void expect_within_bound(const std::vector<float>& got, const std::vector<float>& fp32,
                         const Reference& ref, int k, Precision p, bool tensor_cores) {
  const double u = tensor_cores ? unit_roundoff(p) : 0.0;
  const double factor = 2 * u + u * u + 8 * (k + 1) * std::ldexp(1.0, -24);
  std::size_t outside = 0, first = 0;
  double departure = 0.0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double bound = factor * ref.magnitude[i] + 1e-30;
    if (!(std::fabs(got[i] - ref.exact[i]) <= bound)) {  // NaN fails too
      if (outside++ == 0) first = i;
    }
    departure =
        std::max(departure, std::fabs(double(got[i]) - fp32[i]) / (ref.magnitude[i] + 1e-30));
  }
  EXPECT_EQ(outside, 0u) << outside << " elements outside the bound; the first, " << first
                         << ", is " << got[first] << " for " << ref.exact[first] << " (bound "
                         << factor * ref.magnitude[first] << ")";
  if (tensor_cores) {
    EXPECT_GT(departure, u / 100) << "identical to fp32: were the tensor cores used?";
  }
}

class TensorCorePrecision : public ::testing::TestWithParam<Precision> {};
INSTANTIATE_TEST_SUITE_P(Precisions, TensorCorePrecision,
                         ::testing::Values(Precision::kTf32, Precision::kBf16),
                         [](const ::testing::TestParamInfo<Precision>& p) {
                           return std::string(p.param == Precision::kTf32 ? "tf32" : "bf16");
                         });

// Every tile shape the planner picks (big, long, mid, small; the narrow one stays fp32), partial
// tiles in both directions, and the split-K forward.
TEST_P(TensorCorePrecision, ForwardProductWithinTheFormatsBound) {
  REQUIRE_TENSOR_CORES();
  std::mt19937 rng(21);
  struct Case {
    int m, k, n;
  };
  for (const Case c : {Case{100, 784, 500}, Case{7, 784, 500}, Case{4001, 784, 500},
                       Case{257, 13, 37}, Case{3999, 13, 1003}, Case{100, 784, 10}}) {
    SCOPED_TRACE("m=" + std::to_string(c.m) + " k=" + std::to_string(c.k) +
                 " n=" + std::to_string(c.n));
    const auto x = random_floats(std::size_t(c.m) * c.k, rng, 0.0f, 1.0f),
               w = random_floats(std::size_t(c.k) * c.n, rng, -0.1f, 0.1f),
               b = random_floats(c.n, rng, -0.1f, 0.1f);
    DeviceBuffer<float> dx(x), dw(w), db(b), dy(std::size_t(c.m) * c.n), dy32(dy.size());
    kernels::linear_forward(dx.get(), dw.get(), db.get(), dy.get(), c.m, c.k, c.n, {}, nullptr,
                            GetParam());
    kernels::linear_forward(dx.get(), dw.get(), db.get(), dy32.get(), c.m, c.k, c.n, {}, nullptr);
    const bool narrow = c.n <= 16;  // planned on the CUDA cores at every precision
    const Reference ref = forward_reference(x, w, b, c.m, c.k, c.n);
    expect_within_bound(dy.download(), dy32.download(), ref, c.k, GetParam(), !narrow);
    // The split-K slices, added in order, obey the same bound.
    const int splits = kernels::forward_splits(c.m, c.n, c.k);
    if (splits > 1) {
      DeviceBuffer<float> parts(std::size_t(splits) * c.m * c.n);
      kernels::linear_forward_split(dx.get(), dw.get(), parts.get(), c.m, c.k, c.n, nullptr,
                                    GetParam());
      const std::vector<float> all = parts.download();
      std::vector<float> sum(std::size_t(c.m) * c.n);
      for (std::size_t i = 0; i < sum.size(); ++i) {
        float s = b[i % c.n];
        for (int z = 0; z < splits; ++z) s += all[z * sum.size() + i];
        sum[i] = s;
      }
      expect_within_bound(sum, dy32.download(), ref, c.k, GetParam(), !narrow);
    }
  }
}

// The weight gradient [H^T; 1^T] dZ stored (data-parallel's path), unsplit and split over the
// batch, scaled.
TEST_P(TensorCorePrecision, WeightGradientWithinTheFormatsBound) {
  REQUIRE_TENSOR_CORES();
  std::mt19937 rng(22);
  for (const int batch : {100, 2048}) {
    const int k = 500, n = 37;
    SCOPED_TRACE("batch=" + std::to_string(batch));
    const auto h = random_floats(std::size_t(batch) * k, rng, 0.0f, 2.0f),
               dz = random_floats(std::size_t(batch) * n, rng, -0.01f, 0.01f);
    DeviceBuffer<float> dh(h), d_dz(dz), grad((k + 1) * n), grad32(grad.size());
    const int splits = kernels::weight_grad_splits(k, n, batch);
    DeviceBuffer<float> scratch(std::size_t(splits) * (k + 1) * n);
    float* s = splits > 1 ? scratch.get() : nullptr;
    kernels::weight_grad(dh.get(), k, d_dz.get(), batch, n, 0.5f, grad.get(), s, nullptr,
                         GetParam());
    kernels::weight_grad(dh.get(), k, d_dz.get(), batch, n, 0.5f, grad32.get(), s, nullptr);
    // As a product: A = [H^T; 1^T] ((k + 1) x batch), B = dZ (batch x n), then halved (exact).
    std::vector<float> at(std::size_t(k + 1) * batch), zero(n, 0.0f);
    for (int r = 0; r < batch; ++r) {
      for (int p = 0; p < k; ++p) at[std::size_t(p) * batch + r] = h[std::size_t(r) * k + p];
      at[std::size_t(k) * batch + r] = 1.0f;
    }
    Reference ref = forward_reference(at, dz, zero, k + 1, batch, n);
    for (auto& v : ref.exact) v *= 0.5;
    for (auto& v : ref.magnitude) v *= 0.5;
    expect_within_bound(grad.download(), grad32.download(), ref, batch, GetParam(), true);
  }
}

// One nonzero term per output, times 1: the result is the operand as the format rounds it, exactly.
// The values tell the formats and their rounding apart: 1 + 2^-12 (fp32 keeps it; TF32 and BF16
// give 1), 1 + 2^-11 (TF32's tie: cvt.rna rounds away, to 1 + 2^-10; truncation would give 1),
// 1 + 2^-9 (TF32 keeps it, BF16 gives 1), 1 + 2^-8 (BF16's tie to even: 1) and 1 + 3 2^-8 (BF16's
// tie to even: 1 + 2^-6; truncation would give 1 + 2^-7); negated too.
TEST(TensorCoreRounding, RoundsItsOperandsLikeTheFormat) {
  REQUIRE_TENSOR_CORES();
  const double p = std::ldexp(1.0, -12), q = std::ldexp(1.0, -11), r = std::ldexp(1.0, -9),
               s = std::ldexp(1.0, -8), s3 = 3 * s;
  struct Value {
    double operand, fp32, tf32, bf16;
  };
  const Value values[] = {{1 + p, 1 + p, 1, 1},
                          {1 + q, 1 + q, 1 + 2 * q, 1},
                          {1 + r, 1 + r, 1 + r, 1},
                          {1 + s, 1 + s, 1 + s, 1},
                          {1 + s3, 1 + s3, 1 + s3, 1 + std::ldexp(1.0, -6)}};
  const int m = 128, k = 8, n = 64;  // n > 16: a tensor-core tile
  std::vector<float> x(std::size_t(m) * k, 0.0f), w(std::size_t(k) * n, 0.0f), b(n, 0.0f);
  for (int i = 0; i < m; ++i) {
    const Value& v = values[i % 5];
    x[std::size_t(i) * k + (i % k)] = static_cast<float>(i % 2 ? -v.operand : v.operand);
  }
  for (int p2 = 0; p2 < k; ++p2) w[std::size_t(p2) * n + (p2 * 5) % n] = 1.0f;
  for (const Precision precision : {Precision::kFp32, Precision::kTf32, Precision::kBf16}) {
    DeviceBuffer<float> dx(x), dw(w), db(b), dy(std::size_t(m) * n);
    kernels::linear_forward(dx.get(), dw.get(), db.get(), dy.get(), m, k, n, {}, nullptr,
                            precision);
    const std::vector<float> y = dy.download();
    for (int i = 0; i < m; ++i) {
      const Value& v = values[i % 5];
      const double want = (i % 2 ? -1 : 1) * (precision == Precision::kFp32   ? v.fp32
                                              : precision == Precision::kTf32 ? v.tf32
                                                                              : v.bf16);
      const int col = ((i % k) * 5) % n;
      EXPECT_EQ(double(y[std::size_t(i) * n + col]), want)
          << "row " << i << ", operand " << v.operand << ", precision " << int(precision);
    }
  }
}

}  // namespace
}  // namespace mnist
