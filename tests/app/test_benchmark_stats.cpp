// --benchmark's statistics of timed samples (app/benchmark.h), on samples whose order statistics
// are known: unsorted, odd and even counts, duplicates, one sample, none.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

#include "app/benchmark.h"

namespace mnist {
namespace {

// 1, 2, ..., n in a shuffled order.
std::vector<double> shuffled_one_to(int n) {
  std::vector<double> v(n);
  std::iota(v.begin(), v.end(), 1.0);
  std::shuffle(v.begin(), v.end(), std::mt19937(static_cast<unsigned>(n)));
  return v;
}

struct Case {
  std::vector<double> samples;
  double min, median, p90;
};

TEST(BenchmarkStatistics, MedianAndP90AreTheDocumentedOrderStatistics) {
  const Case cases[] = {
      {{7.5}, 7.5, 7.5, 7.5},
      {{5, 1, 4, 2, 3}, 1, 3, 5},           // n = 5: v[2]; ceil(4.5) = 5th: v[4]
      {{4, 1, 3, 2}, 1, 2.5, 4},            // n = 4: (v[1] + v[2]) / 2; ceil(3.6) = 4th: v[3]
      {{2, 9, 2, 1, 2}, 1, 2, 9},           // duplicates
      {{30, 10, 20}, 10, 20, 30},           // n = 3: v[1]; ceil(2.7) = 3rd: v[2]
      {shuffled_one_to(10), 1, 5.5, 9},     // (v[4] + v[5]) / 2; the 9th: v[8]
      {shuffled_one_to(20), 1, 10.5, 18},   // (v[9] + v[10]) / 2; the 18th: v[17]
      {shuffled_one_to(21), 1, 11, 19},     // v[10]; ceil(18.9) = 19th: v[18]
      {shuffled_one_to(100), 1, 50.5, 90},  // (v[49] + v[50]) / 2; the 90th: v[89]
  };
  for (const Case& c : cases) {
    const TimingSummary s = summarise_timings(c.samples);
    EXPECT_EQ(s.min, c.min) << c.samples.size() << " samples";
    EXPECT_EQ(s.median, c.median) << c.samples.size() << " samples";
    EXPECT_EQ(s.p90, c.p90) << c.samples.size() << " samples";
    const auto [lo, hi] = std::minmax_element(c.samples.begin(), c.samples.end());
    EXPECT_EQ(*lo, s.min);
    EXPECT_LE(s.min, s.median);
    EXPECT_LE(s.median, s.p90);
    EXPECT_LE(s.p90, *hi);
  }
}

TEST(BenchmarkStatistics, NoSamplesGiveZeros) {
  const TimingSummary s = summarise_timings({});
  EXPECT_EQ(s.min, 0.0);
  EXPECT_EQ(s.median, 0.0);
  EXPECT_EQ(s.p90, 0.0);
}

}  // namespace
}  // namespace mnist
