// The summaries' GPU reductions against the host's: tensor statistics and TF histogram buckets
// (src/summary/histogram.h is the reference) and the per-step scalars.
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>
#include <utility>

#include "kernels/reduce.h"
#include "kernels/tensor_stats.h"
#include "summary/histogram.h"
#include "support/gpu_test_util.h"

namespace mnist {
namespace {

using gpu_test::random_floats;

struct DeviceStats {
  double min, max, sum, squares, non_finite;
  std::vector<double> counts;
};

DeviceStats device_stats(const std::vector<float>& x, kernels::StatsOf f) {
  const auto& limits = default_bucket_limits();
  const int buckets = static_cast<int>(limits.size());
  DeviceBuffer<float> dx(x);
  DeviceBuffer<double> dlimits(limits);
  // Poisoned: every field must be written.
  DeviceBuffer<double> slot(std::vector<double>(kernels::stats_slot_doubles(buckets), -7.0));
  DeviceBuffer<double> scratch(kernels::tensor_stats_scratch_doubles());
  kernels::tensor_stats(dx.get(), static_cast<std::int64_t>(x.size()), f, dlimits.get(), buckets,
                        slot.get(), scratch.get(), nullptr);
  const auto s = slot.download();
  return DeviceStats{
      s[kernels::kStatsMin],       s[kernels::kStatsMax],
      s[kernels::kStatsSum],       s[kernels::kStatsSumSquares],
      s[kernels::kStatsNonFinite], std::vector<double>(s.begin() + kernels::kStatsHeader, s.end())};
}

// The histogram the host makes of the same values, bucket by bucket (before TF's merging).
std::vector<double> host_counts(const std::vector<float>& x) {
  std::vector<double> counts(default_bucket_limits().size(), 0.0);
  for (float v : x) counts[default_bucket_index(v)] += 1;
  return counts;
}

void expect_matches_host(const std::vector<float>& x, const char* what) {
  const DeviceStats d = device_stats(x, kernels::StatsOf::kValues);
  double lo = DBL_MAX, hi = -DBL_MAX, sum = 0, squares = 0;
  for (float v : x) {
    lo = std::min(lo, double(v));
    hi = std::max(hi, double(v));
    sum += v;
    squares += double(v) * v;
  }
  EXPECT_EQ(d.min, lo) << what;
  EXPECT_EQ(d.max, hi) << what;
  EXPECT_NEAR(d.sum, sum, 1e-9 * (std::fabs(sum) + squares + 1)) << what;
  EXPECT_NEAR(d.squares, squares, 1e-9 * (squares + 1)) << what;
  EXPECT_EQ(d.non_finite, 0.0) << what;
  EXPECT_EQ(d.counts, host_counts(x)) << what;
  // And through histogram_from_counts, the same histogram make_histogram builds.
  const Histogram from_gpu = histogram_from_counts(d.counts, d.min, d.max, d.sum, d.squares);
  const Histogram from_host = make_histogram(x);
  EXPECT_EQ(from_gpu.bucket_limits, from_host.bucket_limits) << what;
  EXPECT_EQ(from_gpu.bucket_counts, from_host.bucket_counts) << what;
  EXPECT_EQ(from_gpu.num, from_host.num) << what;
}

TEST(TensorStatsKernel, MatchesTheHostHistogramAtOddSizes) {
  REQUIRE_GPU();
  std::mt19937 rng(21);
  for (std::size_t n : {std::size_t(1), std::size_t(7), std::size_t(255), std::size_t(256),
                        std::size_t(257), std::size_t(5000), std::size_t(392000)}) {
    expect_matches_host(random_floats(n, rng, -3.0f, 3.0f), ("n=" + std::to_string(n)).c_str());
  }
}

TEST(TensorStatsKernel, EdgeValuesLandInTfsBuckets) {
  REQUIRE_GPU();
  const auto& limits = default_bucket_limits();
  std::vector<float> x = {0.0f,    -0.0f,    1e-12f, -1e-12f, 1e-45f, -1e-45f, 1.0f, -1.0f,
                          FLT_MAX, -FLT_MAX, 1e19f,  1e21f,   -1e21f, 0.1f,    0.5f};
  for (std::size_t i = 1; i + 1 < limits.size(); i += 97) {  // exactly on an edge, and beside it
    const float v = static_cast<float>(limits[i]);
    x.push_back(v);
    x.push_back(std::nextafter(v, 0.0f));
  }
  expect_matches_host(x, "edges");
}

TEST(TensorStatsKernel, ReluAndNonFiniteValues) {
  REQUIRE_GPU();
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> x = {-2.0f, -1.0f, 0.5f, 3.0f, std::nanf(""), inf, -inf};
  const DeviceStats relu = device_stats(x, kernels::StatsOf::kRelu);
  EXPECT_EQ(relu.min, 0.0);  // -2 and -1 become 0
  EXPECT_EQ(relu.max, 3.0);
  EXPECT_DOUBLE_EQ(relu.sum, 3.5);
  EXPECT_EQ(relu.non_finite, 2.0);  // NaN and +Inf; -Inf becomes 0
  EXPECT_EQ(relu.counts, host_counts({0.0f, 0.0f, 0.5f, 3.0f, 0.0f}));
  const DeviceStats plain = device_stats(x, kernels::StatsOf::kValues);
  EXPECT_EQ(plain.non_finite, 3.0);
  EXPECT_EQ(plain.min, -2.0);
  EXPECT_EQ(plain.max, 3.0);
}

TEST(TensorStatsKernel, BitwiseReproducible) {
  REQUIRE_GPU();
  std::mt19937 rng(5);
  const auto x = random_floats(392000, rng);
  const DeviceStats a = device_stats(x, kernels::StatsOf::kValues);
  const DeviceStats b = device_stats(x, kernels::StatsOf::kValues);
  EXPECT_EQ(a.sum, b.sum);
  EXPECT_EQ(a.squares, b.squares);
  EXPECT_EQ(a.counts, b.counts);
}

// Several tensors in one call: each slot exactly as a call of its own gives it.
TEST(TensorStatsKernel, BatchOfTensorsMatchesOneByOne) {
  REQUIRE_GPU();
  std::mt19937 rng(9);
  const auto& limits = default_bucket_limits();
  const int buckets = static_cast<int>(limits.size());
  const std::size_t slot = kernels::stats_slot_doubles(buckets);
  const std::vector<std::size_t> sizes = {392000, 500, 5000, 10, 1, 50000, 1000};
  std::vector<DeviceBuffer<float>> tensors;
  kernels::StatsBatch batch;
  for (std::size_t t = 0; t < sizes.size(); ++t) {
    tensors.emplace_back(random_floats(sizes[t], rng, -2.0f, 2.0f));
    batch.inputs[batch.count++] =
        kernels::StatsInput{tensors.back().get(), std::int64_t(sizes[t]),
                            t % 2 ? kernels::StatsOf::kRelu : kernels::StatsOf::kValues};
  }
  DeviceBuffer<double> dlimits(limits), scratch(kernels::tensor_stats_scratch_doubles());
  DeviceBuffer<double> slots(std::vector<double>(slot * sizes.size(), -7.0));
  kernels::tensor_stats(batch, dlimits.get(), buckets, slots.get(), scratch.get(), nullptr);
  const auto together = slots.download();
  for (std::size_t t = 0; t < sizes.size(); ++t) {
    DeviceBuffer<double> alone(std::vector<double>(slot, -7.0));
    kernels::tensor_stats(batch.inputs[t].x, batch.inputs[t].n, batch.inputs[t].f, dlimits.get(),
                          buckets, alone.get(), scratch.get(), nullptr);
    const auto own = alone.download();
    EXPECT_TRUE(std::equal(own.begin(), own.end(), together.begin() + t * slot))
        << "tensor " << t << " of " << sizes[t];
  }
}

TEST(SummaryLogitsKernel, MatchesReference) {
  REQUIRE_GPU();
  std::mt19937 rng(12);
  for (auto [rows, units] :
       {std::pair{1, 1}, std::pair{7, 500}, std::pair{100, 500}, std::pair{257, 1000}}) {
    const auto h = random_floats(std::size_t(rows) * units, rng, 0.0f, 1.0f);
    const auto w2 = random_floats(std::size_t(units) * 10, rng), b2 = random_floats(10, rng);
    DeviceBuffer<float> dh(h), dw2(w2), db2(b2);
    auto logits = gpu_test::poisoned<float>(std::size_t(rows) * 10);
    kernels::summary_logits(dh.get(), rows, units, dw2.get(), db2.get(), logits.get(), nullptr);
    std::vector<double> ref(std::size_t(rows) * 10);
    for (int r = 0; r < rows; ++r)
      for (int j = 0; j < 10; ++j) {
        double z = b2[j];
        for (int i = 0; i < units; ++i)
          z += double(h[std::size_t(r) * units + i]) * w2[std::size_t(i) * 10 + j];
        ref[std::size_t(r) * 10 + j] = z;
      }
    EXPECT_TRUE(gpu_test::close(logits.download(), ref, 1e-5)) << rows << "x" << units;
  }
}

TEST(ReduceKernel, StepMetricsGoToTheStepsSlot) {
  REQUIRE_GPU();
  std::mt19937 rng(8);
  for (int rows : {1, 100, 257, 8192}) {
    const auto losses = random_floats(rows, rng, 0.0f, 3.0f);
    std::vector<std::uint8_t> hits(rows);
    int correct = 0;
    for (auto& h : hits) correct += h = rng() % 2;
    DeviceBuffer<float> dloss(losses), mean(1);
    DeviceBuffer<std::uint8_t> dhits(hits);
    DeviceBuffer<std::int64_t> step(std::vector<std::int64_t>{13});  // step 12 was just counted
    DeviceBuffer<float2> ring(std::vector<float2>(8, make_float2(-1.0f, -1.0f)));
    kernels::step_metrics(dloss.get(), dhits.get(), rows, step.get(), ring.get(), 8, nullptr);
    kernels::mean(dloss.get(), mean.get(), rows, nullptr);
    const auto got = ring.download();
    EXPECT_EQ(got[12 % 8].x, mean.download()[0]) << "the same sum as mean(): rows=" << rows;
    EXPECT_FLOAT_EQ(got[12 % 8].y, float(correct) / rows);
    for (int s = 0; s < 8; ++s) {
      if (s != 12 % 8) {
        EXPECT_EQ(got[s].x, -1.0f) << "slot " << s << " written";
      }
    }
  }
}

}  // namespace
}  // namespace mnist
