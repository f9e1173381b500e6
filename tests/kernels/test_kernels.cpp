// Every kernel against a double-precision CPU reference on fresh random inputs, at odd shapes.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>

#include "kernels/baseline/adam.h"
#include "kernels/baseline/batch.h"
#include "kernels/baseline/dropout.h"
#include "kernels/baseline/nll.h"
#include "kernels/common/philox.h"
#include "kernels/common/sample_stream.h"
#include "kernels/gemm.h"
#include "kernels/output_layer.h"
#include "kernels/reduce.h"
#include "kernels/softmax_xent.h"
#include "support/gpu_test_util.h"
#include "train/cpu_backend.h"
#include "train/epochs.h"

namespace mnist {
namespace {

using gpu_test::close;
using gpu_test::poisoned;
using gpu_test::random_floats;

constexpr double kFp32Bound = 1e-5;  // fp32 sums of up to ~1e4 terms, against float64
const int kRows[] = {1, 7, 100, 257};
struct Dims {
  int k, n;
};
const Dims kShapes[] = {{784, 500}, {500, 10}, {784, 10}, {13, 37}};

std::vector<float> download(const DeviceBuffer<float>& b) { return b.download(); }

// Per row of z (rows x 10): 1 where the first maximum is the label.
std::vector<std::uint8_t> argmax_hits(const std::vector<float>& z,
                                      const std::vector<std::uint8_t>& y) {
  std::vector<std::uint8_t> hits(y.size());
  for (std::size_t r = 0; r < y.size(); ++r) {
    const auto row = z.begin() + std::ptrdiff_t(r) * 10;
    hits[r] = std::max_element(row, row + 10) - row == y[r];
  }
  return hits;
}

// The softmax cross-entropy of one row of 10 logits, in float64.
double softmax_xent_of(const double* z, int label) {
  const double zmax = *std::max_element(z, z + 10);
  double sum = 0;
  for (int j = 0; j < 10; ++j) sum += std::exp(z[j] - zmax);
  return std::log(sum) + zmax - z[label];
}

void expect_linear_forward_matches(int m, Dims d, std::mt19937& rng) {
  const auto x = random_floats(std::size_t(m) * d.k, rng),
             w = random_floats(std::size_t(d.k) * d.n, rng), b = random_floats(d.n, rng);
  DeviceBuffer<float> dx(x), dw(w), db(b);
  auto dy = poisoned<float>(std::size_t(m) * d.n);
  kernels::linear_forward(dx.get(), dw.get(), db.get(), dy.get(), m, d.k, d.n, {}, nullptr);
  std::vector<double> ref(std::size_t(m) * d.n);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < d.n; ++j) {
      double s = b[j];
      for (int p = 0; p < d.k; ++p)
        s += double(x[std::size_t(i) * d.k + p]) * w[std::size_t(p) * d.n + j];
      ref[std::size_t(i) * d.n + j] = s;
    }
  EXPECT_TRUE(close(download(dy), ref, kFp32Bound)) << "m=" << m << " k=" << d.k << " n=" << d.n;
}

TEST(GemmKernel, LinearForwardMatchesReference) {
  REQUIRE_GPU();
  std::mt19937 rng(1);
  for (int m : kRows)
    for (Dims d : kShapes) expect_linear_forward_matches(m, d, rng);
}

// Outputs wide enough for the 128 x 128 tiles (the evaluation and large batches), with a partial
// last tile in both directions.
TEST(GemmKernel, LinearForwardOnBigTilesMatchesReference) {
  REQUIRE_GPU();
  std::mt19937 rng(15);
  expect_linear_forward_matches(4001, {784, 500}, rng);
  expect_linear_forward_matches(3999, {13, 1003}, rng);
}

// The output layer adds at most kMaxForwardSplits slices of the split forward: no plan may cut
// more, narrow hidden layers (the Narrow tile, n <= 16) included.
TEST(GemmKernel, ForwardNeverSplitsBeyondWhatTheOutputLayerAdds) {
  REQUIRE_GPU();
  for (int n = 1; n <= 40; ++n)
    for (int m : {1, 7, 37, 100, 128, 1000})
      EXPECT_LE(kernels::forward_splits(m, n), kernels::kMaxForwardSplits) << m << " x " << n;
}

// The float split-K product (what --benchmark times against cuBLAS): its slices, added in order,
// are X * W.
TEST(GemmKernel, SplitForwardOnFloatsSlicesSumToTheProduct) {
  REQUIRE_GPU();
  std::mt19937 rng(16);
  for (int m : kRows) {
    for (Dims d : {Dims{784, 500}, Dims{13, 37}}) {
      const int splits = kernels::forward_splits(m, d.n, d.k);
      SCOPED_TRACE("m=" + std::to_string(m) + " k=" + std::to_string(d.k) +
                   " splits=" + std::to_string(splits));
      const auto x = random_floats(std::size_t(m) * d.k, rng),
                 w = random_floats(std::size_t(d.k) * d.n, rng);
      DeviceBuffer<float> dx(x), dw(w);
      auto partials = poisoned<float>(std::size_t(splits) * m * d.n);
      kernels::linear_forward_split(dx.get(), dw.get(), partials.get(), m, d.k, d.n, nullptr);
      const auto slices = download(partials);
      std::vector<float> sum(std::size_t(m) * d.n, 0.0f);
      for (int s = 0; s < splits; ++s)
        for (std::size_t e = 0; e < sum.size(); ++e) sum[e] += slices[s * sum.size() + e];
      std::vector<double> ref(sum.size());
      for (int i = 0; i < m; ++i)
        for (int j = 0; j < d.n; ++j) {
          double acc = 0;
          for (int p = 0; p < d.k; ++p)
            acc += double(x[std::size_t(i) * d.k + p]) * w[std::size_t(p) * d.n + j];
          ref[std::size_t(i) * d.n + j] = acc;
        }
      EXPECT_TRUE(close(sum, ref, kFp32Bound));
    }
  }
  EXPECT_GT(kernels::forward_splits(100, 500, 784), 1);  // the batch-100 shape is split
}

TEST(GemmKernel, ReluDropoutEpilogueUsesThePhiloxMask) {
  REQUIRE_GPU();
  std::mt19937 rng(2);
  const std::int64_t step = 1234567;
  DeviceBuffer<std::int64_t> dstep(std::vector<std::int64_t>{step});
  for (int m : kRows) {
    const int k = 784, n = 500;
    const auto x = random_floats(std::size_t(m) * k, rng),
               w = random_floats(std::size_t(k) * n, rng), b = random_floats(n, rng);
    DeviceBuffer<float> dx(x), dw(w), db(b);
    auto dy = poisoned<float>(std::size_t(m) * n);
    const float keep = 0.9f;
    kernels::linear_forward(dx.get(), dw.get(), db.get(), dy.get(), m, k, n,
                            {true, keep, 99, dstep.get()}, nullptr);
    std::vector<double> ref(std::size_t(m) * n);
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) {
        double s = b[j];
        for (int p = 0; p < k; ++p)
          s += double(x[std::size_t(i) * k + p]) * w[std::size_t(p) * n + j];
        const bool kept = dropout_uniform(99, step, std::uint32_t(i * n + j)) < keep;
        ref[std::size_t(i) * n + j] = kept ? std::max(s, 0.0) / keep : 0.0;
      }
    EXPECT_TRUE(close(download(dy), ref, kFp32Bound)) << "m=" << m;
  }
}

std::vector<std::uint8_t> random_bytes(std::size_t n, std::mt19937& rng) {
  std::vector<std::uint8_t> v(n);
  for (auto& x : v)
    x = rng() % 3 == 0 ? static_cast<std::uint8_t>(rng()) : 0;  // sparse, like MNIST
  return v;
}

// A resident "training set" of `count` random images with two epoch orders on the device.
struct ByteSet {
  int count;
  std::vector<std::uint8_t> images, labels;
  std::vector<std::int32_t> order0, order1;
  DeviceBuffer<std::uint8_t> d_images, d_labels;
  DeviceBuffer<std::int32_t> d_orders;
  ByteSet(int n, std::mt19937& rng)
      : count(n),
        images(random_bytes(std::size_t(n) * 784, rng)),
        labels(std::size_t(n)),
        order0(epoch_order(rng(), 0, n)),
        order1(epoch_order(rng(), 1, n)),
        d_images(images) {
    for (auto& l : labels) l = static_cast<std::uint8_t>(rng() % 10);
    d_labels = DeviceBuffer<std::uint8_t>(labels);
    std::vector<std::int32_t> both(order0);
    both.insert(both.end(), order1.begin(), order1.end());
    d_orders = DeviceBuffer<std::int32_t>(both);
  }
  int image(std::int64_t step, int batch, int r) const {
    const auto pos = stream_position(step, batch, r, count);
    return (pos.epoch % 2 == 0 ? order0 : order1)[pos.index];
  }
  double pixel(int image_index, int k) const {
    return images[std::size_t(image_index) * 784 + k] / 255.0;
  }
};

// The forward of a batch drawn at `step` from `set`, in float64: rows of X * W + b, then ReLU and
// dropout (Philox seed 5) when `relu_dropout`; and the batch's image indices and labels.
struct ForwardReference {
  std::vector<double> y;
  std::vector<std::uint8_t> labels;
  std::vector<std::int32_t> images;
};

ForwardReference reference_forward(const ByteSet& set, std::int64_t step, int m, int n,
                                   const std::vector<float>& w, const std::vector<float>& b,
                                   bool relu_dropout, float keep) {
  ForwardReference ref{std::vector<double>(std::size_t(m) * n), std::vector<std::uint8_t>(m),
                       std::vector<std::int32_t>(m)};
  for (int i = 0; i < m; ++i) {
    const int image = set.image(step, m, i);
    ref.images[i] = image;
    ref.labels[i] = set.labels[image];
    for (int j = 0; j < n; ++j) {
      double acc = b[j];
      for (int p = 0; p < 784; ++p) acc += set.pixel(image, p) * w[std::size_t(p) * n + j];
      if (relu_dropout) {
        const bool kept = dropout_uniform(5, step, std::uint32_t(i * n + j)) < keep;
        acc = kept ? std::max(acc, 0.0) / keep : 0.0;
      }
      ref.y[std::size_t(i) * n + j] = acc;
    }
  }
  return ref;
}

TEST(GemmKernel, ForwardOnGatheredBytesMatchesReference) {
  REQUIRE_GPU();
  std::mt19937 rng(3);
  ByteSet set(1000, rng);
  for (int m : kRows) {
    for (int n : {500, 10, 37}) {
      const std::int64_t step = 1000 / m;  // lands the batch on (or across) the epoch boundary
      DeviceBuffer<std::int64_t> dstep(std::vector<std::int64_t>{step});
      const auto w = random_floats(std::size_t(784) * n, rng), b = random_floats(n, rng);
      DeviceBuffer<float> dw(w), db(b);
      auto dy = poisoned<float>(std::size_t(m) * n);
      DeviceBuffer<std::uint8_t> batch_labels(m);
      DeviceBuffer<std::int32_t> batch_images(m);
      const float keep = n == 500 ? 0.9f : 1.0f;
      const kernels::ByteRows rows{set.d_images.get(), nullptr,     set.d_orders.get(),
                                   set.count,          dstep.get(), m};
      kernels::linear_forward_bytes(
          rows, dw.get(), db.get(), dy.get(), m, n, {n == 500, keep, 5, dstep.get()},
          {set.d_labels.get(), batch_labels.get(), batch_images.get()}, nullptr);
      const ForwardReference ref = reference_forward(set, step, m, n, w, b, n == 500, keep);
      EXPECT_TRUE(close(download(dy), ref.y, kFp32Bound)) << "m=" << m << " n=" << n;
      EXPECT_EQ(batch_labels.download(), ref.labels);
      EXPECT_EQ(batch_images.download(), ref.images);
    }
  }
}

// Small batches: the forward is split over the 784 pixels into partial products, and the output
// layer adds them in order, applies bias, ReLU and dropout, and writes the hidden layer.
TEST(GemmKernel, SplitForwardFinishedByTheOutputLayer) {
  REQUIRE_GPU();
  std::mt19937 rng(14);
  ByteSet set(1000, rng);
  for (int m : kRows) {
    for (int n : {500, 40}) {
      const int splits = kernels::forward_splits(m, n);
      SCOPED_TRACE("m=" + std::to_string(m) + " n=" + std::to_string(n) +
                   " splits=" + std::to_string(splits));
      ASSERT_GT(splits, 1);  // these shapes are too small to fill the GPU unsplit
      const std::int64_t step = 1000 / m;
      DeviceBuffer<std::int64_t> dstep(std::vector<std::int64_t>{step}), batch_step(1);
      const auto w = random_floats(std::size_t(784) * n, rng), b = random_floats(n, rng);
      const auto w2 = random_floats(std::size_t(n) * 10, rng), b2 = random_floats(10, rng);
      DeviceBuffer<float> dw(w), db(b), dw2(w2), db2(b2);
      auto partials = poisoned<float>(std::size_t(splits) * m * n);
      auto h = poisoned<float>(std::size_t(m) * n);
      auto loss = poisoned<float>(m), dlogits = poisoned<float>(std::size_t(m) * 10),
           dh = poisoned<float>(std::size_t(m) * n);
      DeviceBuffer<std::uint8_t> batch_labels(m);
      DeviceBuffer<std::int32_t> batch_images(m);
      DeviceBuffer<std::int64_t> counter(std::vector<std::int64_t>{step});
      const float keep = 0.9f;
      const kernels::ByteRows rows{set.d_images.get(), nullptr,     set.d_orders.get(),
                                   set.count,          dstep.get(), m};
      kernels::linear_forward_bytes_split(
          rows, dw.get(), partials.get(), m, n,
          {set.d_labels.get(), batch_labels.get(), batch_images.get(), batch_step.get()}, nullptr);
      const kernels::SplitHidden split{partials.get(), splits, db.get(),
                                       kernels::ReluDropout{true, keep, 5, batch_step.get()}};
      DeviceBuffer<std::uint8_t> hits(m);
      kernels::output_layer_train(h.get(), split, m, n, dw2.get(), db2.get(), batch_labels.get(),
                                  keep, loss.get(), hits.get(), dlogits.get(), dh.get(),
                                  counter.get(), nullptr);
      const ForwardReference ref = reference_forward(set, step, m, n, w, b, true, keep);
      EXPECT_TRUE(close(download(h), ref.y, kFp32Bound));
      EXPECT_EQ(batch_labels.download(), ref.labels);
      EXPECT_EQ(batch_images.download(), ref.images);
      EXPECT_EQ(batch_step.download()[0], step);
      EXPECT_EQ(counter.download()[0], step + 1);
      for (float v : download(dh)) ASSERT_FALSE(std::isnan(v));  // every element written
      for (float v : download(loss)) ASSERT_FALSE(std::isnan(v));
    }
  }
}

// Runs a weight-gradient + Adam kernel (via `run`) and checks the gradient it used against
// `ref_grad` (recovered from the first moment: m' = b1 m + (1 - b1) g) and the update against the
// CPU optimizer applied to the reference gradient.
template <typename Run>
void check_grad_adam(std::size_t size, const std::vector<double>& ref_grad, std::mt19937& rng,
                     Run run, int splits) {
  const bool split = splits > 1;  // exercises split-K and its fixed-order sum
  DeviceBuffer<float> scratch(split ? splits * size : 0);
  auto p = random_floats(size, rng), m = random_floats(size, rng, 0.0f, 0.01f),
       v = random_floats(size, rng, 0.0f, 1e-4f);
  DeviceBuffer<float> dp(p), dm(m), dv(v);
  const std::int64_t t = 7;
  DeviceBuffer<std::int64_t> dstep(std::vector<std::int64_t>{t});
  run(kernels::AdamUpdate{dp.get(), dm.get(), dv.get(), 0.001f, kAdamBeta1, kAdamBeta2,
                          kAdamEpsilon, dstep.get(), split ? scratch.get() : nullptr});
  const std::vector<float> m_after = download(dm);
  std::vector<float> used_grad(size);
  for (std::size_t i = 0; i < size; ++i)
    used_grad[i] =
        static_cast<float>((double(m_after[i]) - kAdamBeta1 * double(m[i])) / (1.0 - kAdamBeta1));
  EXPECT_TRUE(close(used_grad, ref_grad, kFp32Bound));
  std::vector<float> g(ref_grad.begin(), ref_grad.end());
  cpu::adam(p.data(), g.data(), m.data(), v.data(), size, 0.001f, t);
  EXPECT_TRUE(close(download(dp), std::vector<double>(p.begin(), p.end()), 1e-6));
  EXPECT_TRUE(close(download(dv), std::vector<double>(v.begin(), v.end()), 1e-5));
}

TEST(GemmKernel, WeightGradientOnBytesWithBiasRowAndAdam) {
  REQUIRE_GPU();
  std::mt19937 rng(4);
  ByteSet set(600, rng);
  for (int batch : {1, 7, 100, 257, 2048}) {
    for (int n : {500, 10}) {
      const int splits = kernels::weight_grad_splits(784, n, batch);
      std::vector<std::int32_t> images(batch);
      for (auto& i : images) i = static_cast<std::int32_t>(rng() % set.count);
      DeviceBuffer<std::int32_t> d_images(images);
      const auto dz = random_floats(std::size_t(batch) * n, rng);
      DeviceBuffer<float> d_dz(dz);
      std::vector<double> ref(std::size_t(785) * n, 0.0);
      for (int r = 0; r < batch; ++r)
        for (int j = 0; j < n; ++j) {
          const double d = dz[std::size_t(r) * n + j];
          for (int p = 0; p < 784; ++p) ref[std::size_t(p) * n + j] += set.pixel(images[r], p) * d;
          ref[std::size_t(784) * n + j] += d;
        }
      const kernels::ByteRows rows{set.d_images.get(), d_images.get(), nullptr,
                                   set.count,          nullptr,        batch};
      SCOPED_TRACE("batch=" + std::to_string(batch) + " n=" + std::to_string(n));
      check_grad_adam(
          ref.size(), ref, rng,
          [&](const kernels::AdamUpdate& adam) {
            kernels::weight_grad_adam_bytes(rows, d_dz.get(), batch, n, adam, nullptr);
          },
          splits);
    }
  }
}

TEST(GemmKernel, WeightGradientOnFloatsWithBiasRowAndAdam) {
  REQUIRE_GPU();
  std::mt19937 rng(5);
  for (int batch : {1, 7, 100, 257, 3000}) {
    for (Dims d : {Dims{500, 10}, Dims{13, 37}}) {
      const int splits = kernels::weight_grad_splits(d.k, d.n, batch);
      const auto h = random_floats(std::size_t(batch) * d.k, rng),
                 dz = random_floats(std::size_t(batch) * d.n, rng);
      DeviceBuffer<float> dh(h), d_dz(dz);
      std::vector<double> ref(std::size_t(d.k + 1) * d.n, 0.0);
      for (int r = 0; r < batch; ++r)
        for (int j = 0; j < d.n; ++j) {
          const double g = dz[std::size_t(r) * d.n + j];
          for (int p = 0; p < d.k; ++p)
            ref[std::size_t(p) * d.n + j] += double(h[std::size_t(r) * d.k + p]) * g;
          ref[std::size_t(d.k) * d.n + j] += g;
        }
      SCOPED_TRACE("batch=" + std::to_string(batch) + " k=" + std::to_string(d.k));
      check_grad_adam(
          ref.size(), ref, rng,
          [&](const kernels::AdamUpdate& adam) {
            kernels::weight_grad_adam(dh.get(), d.k, d_dz.get(), batch, d.n, adam, nullptr);
          },
          splits);
    }
  }
}

std::vector<std::uint8_t> random_labels(int n, std::mt19937& rng) {
  std::vector<std::uint8_t> y(n);
  for (auto& v : y) v = static_cast<std::uint8_t>(rng() % 10);
  return y;
}

TEST(SoftmaxXentKernel, LossAndGradientMatchReference) {
  REQUIRE_GPU();
  std::mt19937 rng(5);
  for (int m : kRows) {
    const auto z =
        random_floats(std::size_t(m) * 10, rng, -30.0f, 30.0f);  // large: stability matters
    const auto y = random_labels(m, rng);
    DeviceBuffer<float> dz(z);
    DeviceBuffer<std::uint8_t> dy(y);
    auto loss = poisoned<float>(m);
    auto grad = poisoned<float>(std::size_t(m) * 10);
    DeviceBuffer<std::int64_t> step(std::vector<std::int64_t>{41});
    DeviceBuffer<std::uint8_t> hits(std::vector<std::uint8_t>(m, 7));  // poisoned: neither 0 nor 1
    kernels::softmax_xent(dz.get(), dy.get(), loss.get(), hits.get(), grad.get(), m, 10, step.get(),
                          nullptr);
    EXPECT_EQ(step.download()[0], 42);
    EXPECT_EQ(hits.download(), argmax_hits(z, y)) << "m=" << m;
    std::vector<double> ref_loss(m), ref_grad(std::size_t(m) * 10);
    for (int i = 0; i < m; ++i) {
      const double zmax = *std::max_element(z.begin() + i * 10, z.begin() + i * 10 + 10);
      double sum = 0;
      for (int j = 0; j < 10; ++j) sum += std::exp(z[i * 10 + j] - zmax);
      ref_loss[i] = std::log(sum) + zmax - z[i * 10 + y[i]];
      for (int j = 0; j < 10; ++j)
        ref_grad[i * 10 + j] = (std::exp(z[i * 10 + j] - zmax) / sum - (j == y[i])) / m;
    }
    EXPECT_TRUE(close(download(loss), ref_loss, 1e-5)) << "m=" << m;
    EXPECT_TRUE(close(download(grad), ref_grad, 1e-5)) << "m=" << m;
  }
}

// Row r's logits h[r] * W2 + b2 in float64.
std::array<double, 10> reference_logits(const std::vector<float>& h, int hidden,
                                        const std::vector<float>& w2, const std::vector<float>& b2,
                                        int r) {
  std::array<double, 10> z{};
  for (int j = 0; j < 10; ++j) {
    z[j] = b2[j];
    for (int i = 0; i < hidden; ++i)
      z[j] += double(h[std::size_t(r) * hidden + i]) * w2[std::size_t(i) * 10 + j];
  }
  return z;
}

TEST(OutputLayerKernel, LossAndGradientsMatchReference) {
  REQUIRE_GPU();
  std::mt19937 rng(12);
  // Small batches read W2 directly; 3000 rows give blocks several rows, which stage W2 in shared
  // memory (hidden 2100: in three chunks); past a row per block, hidden layers up to 1024 units
  // take the warp-per-row kernel (13, 40, 500, 1024 units), wider ones the chunked one (1025).
  std::vector<std::pair<int, int>> cases;
  for (int m : kRows)
    for (int hidden : {500, 13, 40, 2100}) cases.emplace_back(m, hidden);
  for (int hidden : {500, 2100, 13, 40, 1024, 1025}) cases.emplace_back(3000, hidden);
  for (auto [m, hidden] : cases) {
    {
      auto h = random_floats(std::size_t(m) * hidden, rng, -1.0f, 3.0f);
      for (auto& v : h) v = std::max(v, 0.0f);  // post-ReLU/dropout activations
      // Weights scaled like an initialisation (logits of a few units): saturated logits would
      // leave float32 losses of 1e-9 that no float32 kernel can match relative to float64.
      const float scale = 2.0f / std::sqrt(float(hidden));
      const auto w2 = random_floats(std::size_t(hidden) * 10, rng, -scale, scale),
                 b2 = random_floats(10, rng);
      const auto y = random_labels(m, rng);
      DeviceBuffer<float> dh_in(h), dw2(w2), db2(b2);
      DeviceBuffer<std::uint8_t> dy(y);
      auto loss = poisoned<float>(m), dlogits = poisoned<float>(std::size_t(m) * 10),
           dh = poisoned<float>(std::size_t(m) * hidden);
      DeviceBuffer<std::int64_t> step(std::vector<std::int64_t>{9});
      const float keep = 0.8f;
      DeviceBuffer<std::uint8_t> hits(std::vector<std::uint8_t>(m, 7));
      kernels::output_layer_train(dh_in.get(), {}, m, hidden, dw2.get(), db2.get(), dy.get(), keep,
                                  loss.get(), hits.get(), dlogits.get(), dh.get(), step.get(),
                                  nullptr);
      std::vector<double> ref_loss(m), ref_dlogits(std::size_t(m) * 10),
          ref_dh(std::size_t(m) * hidden);
      for (int r = 0; r < m; ++r) {
        const auto z = reference_logits(h, hidden, w2, b2, r);
        const double zmax = *std::max_element(z.begin(), z.end());
        double sum = 0;
        for (double v : z) sum += std::exp(v - zmax);
        ref_loss[r] = std::log(sum) + zmax - z[y[r]];
        for (int j = 0; j < 10; ++j)
          ref_dlogits[r * 10 + j] = (std::exp(z[j] - zmax) / sum - (j == y[r])) / m;
        for (int i = 0; i < hidden; ++i) {
          double s = 0;
          for (int j = 0; j < 10; ++j) s += ref_dlogits[r * 10 + j] * w2[std::size_t(i) * 10 + j];
          ref_dh[std::size_t(r) * hidden + i] = h[std::size_t(r) * hidden + i] > 0 ? s / keep : 0.0;
        }
      }
      EXPECT_TRUE(close(download(loss), ref_loss, 1e-5)) << "m=" << m << " hidden=" << hidden;
      // Hits: the float64 argmax, but a float32 near-tie may resolve differently (one in 1000).
      int hit_mismatches = 0;
      const auto got_hits = hits.download();
      for (int r = 0; r < m; ++r) {
        const auto z = reference_logits(h, hidden, w2, b2, r);
        const int ref = std::max_element(z.begin(), z.end()) - z.begin() == y[r];
        ASSERT_LE(got_hits[r], 1) << "row " << r << " not written";
        hit_mismatches += got_hits[r] != ref;
      }
      EXPECT_LE(hit_mismatches, m / 1000) << "m=" << m << " hidden=" << hidden;
      EXPECT_TRUE(close(download(dlogits), ref_dlogits, 1e-5)) << "m=" << m << " hidden=" << hidden;
      EXPECT_TRUE(close(download(dh), ref_dh, 1e-5)) << "m=" << m << " hidden=" << hidden;
      EXPECT_EQ(step.download()[0], 10);
    }
  }
}

TEST(OutputLayerKernel, CountCorrectMatchesArgmax) {
  REQUIRE_GPU();
  std::mt19937 rng(13);
  for (auto [m, hidden] : {std::pair{1, 500},
                           {7, 500},
                           {100, 500},
                           {257, 500},
                           {10000, 500},
                           {10000, 40},
                           {5000, 1024},
                           {257, 2100},
                           {3000, 2100}}) {
    const auto h = random_floats(std::size_t(m) * hidden, rng, 0.0f, 1.0f);
    const auto w2 = random_floats(std::size_t(hidden) * 10, rng), b2 = random_floats(10, rng);
    const auto y = random_labels(m, rng);
    DeviceBuffer<float> dh(h), dw2(w2), db2(b2);
    DeviceBuffer<std::uint8_t> dy(y);
    DeviceBuffer<int> correct(std::vector<int>{3});
    auto row_loss = poisoned<float>(m);
    kernels::output_layer_count_correct(dh.get(), m, hidden, dw2.get(), db2.get(), dy.get(),
                                        correct.get(), row_loss.get(), nullptr);
    int expected = 3;
    std::vector<double> ref_loss(m);
    for (int r = 0; r < m; ++r) {
      const auto z = reference_logits(h, hidden, w2, b2, r);
      expected += std::max_element(z.begin(), z.end()) - z.begin() == y[r];
      ref_loss[r] = softmax_xent_of(z.data(), y[r]);
    }
    // A float32 near-tie may resolve differently from float64: allow one in a thousand.
    EXPECT_NEAR(correct.download()[0], expected, 1 + m / 1000) << "m=" << m;
    EXPECT_TRUE(close(download(row_loss), ref_loss, 1e-5)) << "m=" << m;
    // Without a row_loss buffer only the count is written.
    kernels::output_layer_count_correct(dh.get(), m, hidden, dw2.get(), db2.get(), dy.get(),
                                        correct.get(), nullptr, nullptr);
    EXPECT_NEAR(correct.download()[0], 2 * expected - 3, 2 + m / 500) << "m=" << m;
  }
}

TEST(SoftmaxXentKernel, CountCorrectMatchesArgmax) {
  REQUIRE_GPU();
  std::mt19937 rng(6);
  for (int m : {1, 7, 100, 257, 10000}) {
    const auto z = random_floats(std::size_t(m) * 10, rng);
    const auto y = random_labels(m, rng);
    DeviceBuffer<float> dz(z);
    DeviceBuffer<std::uint8_t> dy(y);
    DeviceBuffer<int> correct(std::vector<int>{5});  // accumulates onto what is there
    auto row_loss = poisoned<float>(m);
    kernels::count_correct(dz.get(), dy.get(), m, 10, correct.get(), row_loss.get(), nullptr);
    int expected = 5;
    std::vector<double> ref_loss(m);
    const auto hits = argmax_hits(z, y);
    for (int i = 0; i < m; ++i) {
      expected += hits[i];
      std::array<double, 10> row{};
      for (int j = 0; j < 10; ++j) row[j] = z[std::size_t(i) * 10 + j];
      ref_loss[i] = softmax_xent_of(row.data(), y[i]);
    }
    EXPECT_EQ(correct.download()[0], expected) << "m=" << m;
    EXPECT_TRUE(close(download(row_loss), ref_loss, 1e-5)) << "m=" << m;
  }
}

TEST(ReduceKernel, MeanMatchesReference) {
  REQUIRE_GPU();
  std::mt19937 rng(7);
  for (int m : kRows) {
    const auto v = random_floats(m, rng, 0.0f, 5.0f);
    DeviceBuffer<float> dv(v);
    auto mean = poisoned<float>(1);
    kernels::mean(dv.get(), mean.get(), m, nullptr);
    double ref = 0;
    for (float x : v) ref += x;
    EXPECT_TRUE(close(download(mean), {ref / m}, 1e-6)) << "m=" << m;
  }
}

TEST(ReluDropoutKernel, BackwardPassesGradientWhereTheOutputIsPositive) {
  REQUIRE_GPU();
  std::mt19937 rng(8);
  for (int m : kRows) {
    const std::size_t n = std::size_t(m) * 500;
    auto h = random_floats(n, rng);
    for (std::size_t i = 0; i < n; i += 3) h[i] = 0.0f;  // ReLU'd or dropped
    const auto dh = random_floats(n, rng);
    DeviceBuffer<float> dhb(dh), hb(h);
    auto dz = poisoned<float>(n);
    kernels::relu_dropout_backward(dhb.get(), hb.get(), dz.get(), n, 0.9f, nullptr);
    std::vector<double> ref(n);
    for (std::size_t i = 0; i < n; ++i) ref[i] = h[i] > 0 ? dh[i] / 0.9 : 0.0;
    EXPECT_TRUE(close(download(dz), ref, 1e-6)) << "m=" << m;
  }
}

// The baseline's dropout kernel draws Random123's Philox4x32-10 stream on the device (the first
// group's words below come from Random123's own philox.h, seed 42 at steps 0 and 1), scales a
// kept activation by 1 / keep (applied here), and draws a fresh mask each step: consecutive
// steps agree on about keep^2 + (1 - keep)^2 of the elements.
TEST(DropoutKernel, DrawsThePhiloxStreamOfItsStepAndScalesByOneOverKeep) {
  REQUIRE_GPU();
  const std::uint32_t first_words[2][4] = {{0x3f7e560du, 0x7dec5f89u, 0xfa664762u, 0x91695f8bu},
                                           {0xc4f483c4u, 0x3bbff92fu, 0xb7d5c7efu, 0xe20aabacu}};
  const std::size_t n = 4099;
  const float keep = 0.5f;
  std::mt19937 rng(12);
  const auto a = random_floats(n, rng, 0.5f, 1.5f);  // positive, so only a dropped one is 0
  DeviceBuffer<float> da(a);
  std::vector<float> h[2];
  for (std::int64_t step = 0; step < 2; ++step) {
    DeviceBuffer<std::int64_t> dstep(std::vector<std::int64_t>{step});
    auto dh = poisoned<float>(n);
    kernels::dropout_forward(da.get(), dh.get(), n, keep, 42, dstep.get(), nullptr);
    h[step] = download(dh);
    std::vector<double> ref(n);
    for (std::size_t i = 0; i < n; ++i) {
      const float u = i < 4 ? float(first_words[step][i] >> 8) / 16777216.0f
                            : dropout_uniform(42, std::uint64_t(step), std::uint32_t(i));
      ref[i] = u < keep ? a[i] / 0.5 : 0.0;
    }
    EXPECT_TRUE(close(h[step], ref, 1e-6)) << "step " << step;
  }
  std::size_t agree = 0;
  for (std::size_t i = 0; i < n; ++i) agree += (h[0][i] == 0.0f) == (h[1][i] == 0.0f);
  EXPECT_NEAR(double(agree) / n, 0.5, 0.05);
}

TEST(AdamKernel, MatchesTheCpuOptimizer) {
  REQUIRE_GPU();
  std::mt19937 rng(9);
  for (std::size_t n : {std::size_t(1), std::size_t(397510), std::size_t(1000003)}) {
    auto p = random_floats(n, rng), m = random_floats(n, rng, 0.0f, 0.01f),
         v = random_floats(n, rng, 0.0f, 1e-4f);
    const auto g = random_floats(n, rng, -0.1f, 0.1f);
    DeviceBuffer<float> dp(p), dg(g), dm(m), dv(v);
    const std::int64_t step = 41;
    DeviceBuffer<std::int64_t> dstep(std::vector<std::int64_t>{step});
    kernels::adam_update(dp.get(), dg.get(), dm.get(), dv.get(), n, 0.001f, kAdamBeta1, kAdamBeta2,
                         kAdamEpsilon, dstep.get(), nullptr);
    cpu::adam(p.data(), g.data(), m.data(), v.data(), n, 0.001f, step);  // t = *step
    EXPECT_TRUE(close(download(dp), std::vector<double>(p.begin(), p.end()), 1e-6)) << "n=" << n;
    EXPECT_TRUE(close(download(dm), std::vector<double>(m.begin(), m.end()), 1e-6)) << "n=" << n;
    EXPECT_TRUE(close(download(dv), std::vector<double>(v.begin(), v.end()), 1e-6)) << "n=" << n;
    EXPECT_EQ(dstep.download()[0], step) << "Adam reads the step counter, never advances it";
  }
}

TEST(BatchKernel, GatherFollowsTheEpochStreamAcrossAnEpochBoundary) {
  REQUIRE_GPU();
  std::mt19937 rng(10);
  const int count = 1000, batch = 257;
  std::vector<std::uint8_t> images(std::size_t(count) * 784), labels = random_labels(count, rng);
  for (auto& px : images) px = static_cast<std::uint8_t>(rng());
  const auto order0 = epoch_order(1, 0, count), order1 = epoch_order(1, 1, count);
  std::vector<std::int32_t> orders(order0);
  orders.insert(orders.end(), order1.begin(), order1.end());
  DeviceBuffer<std::uint8_t> dimages(images), dlabels(labels);
  DeviceBuffer<std::int32_t> dorders(orders);
  const std::int64_t step = 3;  // samples 771..1027: crosses into epoch 1
  DeviceBuffer<std::int64_t> dstep(std::vector<std::int64_t>{step});
  auto x = poisoned<float>(std::size_t(batch) * 784);
  DeviceBuffer<std::uint8_t> y(batch);
  kernels::gather_batch(dimages.get(), dlabels.get(), dorders.get(), count, dstep.get(), batch, 784,
                        x.get(), y.get(), nullptr);
  std::vector<double> ref(std::size_t(batch) * 784);
  std::vector<std::uint8_t> ref_y(batch);
  for (int r = 0; r < batch; ++r) {
    const auto pos = stream_position(step, batch, r, count);
    const int sample = (pos.epoch == 0 ? order0 : order1)[pos.index];
    ref_y[r] = labels[sample];
    for (int k = 0; k < 784; ++k)
      ref[std::size_t(r) * 784 + k] = images[std::size_t(sample) * 784 + k] / 255.0;
  }
  EXPECT_TRUE(close(download(x), ref, 1e-6));
  EXPECT_EQ(y.download(), ref_y);

  auto all = poisoned<float>(images.size());
  kernels::bytes_to_unit(dimages.get(), all.get(), images.size(), nullptr);
  std::vector<double> ref_all(images.begin(), images.end());
  for (auto& v : ref_all) v /= 255.0;
  EXPECT_TRUE(close(download(all), ref_all, 1e-6));
}

}  // namespace
}  // namespace mnist
