// Histograms as TensorFlow's histogram summary makes them: counts over TF's default bucket edges,
// encoded as a HistogramProto, which TensorBoard's histogram and distribution dashboards draw.
#pragma once

#include <cstddef>
#include <vector>

namespace mnist {

// HistogramProto's fields. Bucket i holds the values in [bucket_limits[i-1], bucket_limits[i])
// (from -DBL_MAX for i == 0); the limits ascend and the last is DBL_MAX.
struct Histogram {
  double min = 0;
  double max = 0;
  double num = 0;
  double sum = 0;
  double sum_squares = 0;
  std::vector<double> bucket_limits;
  std::vector<double> bucket_counts;
};

// TensorFlow's default bucket edges (tsl/lib/histogram): 0, +-1e-12 * 1.1^k for every k with
// 1e-12 * 1.1^k < 1e20, and +-DBL_MAX; ascending, 1551 in all. A device computing counts for
// histogram_from_counts uses this same table (by index), so its buckets match bit for bit.
const std::vector<double>& default_bucket_limits();

// The index in default_bucket_limits() of the bucket holding `value` (finite): the first limit
// greater than it.
std::size_t default_bucket_index(double value);

// The histogram of `values` (each widened to double, as TF does). Throws
// Error(ExitCode::kDiverged) for a NaN or infinity, which TF's summary op refuses too. No values:
// TF's empty histogram (min DBL_MAX, max -DBL_MAX, num 0, one empty bucket).
Histogram make_histogram(const float* values, std::size_t count);
inline Histogram make_histogram(const std::vector<float>& values) {
  return make_histogram(values.data(), values.size());
}

// The histogram of precomputed statistics (a GPU reduction): counts[i] values in default bucket i
// (counts.size() == default_bucket_limits().size(), else Error(kInternal)); num is their sum.
Histogram histogram_from_counts(const std::vector<double>& counts, double min, double max,
                                double sum, double sum_squares);

}  // namespace mnist
