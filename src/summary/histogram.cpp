// TF's histogram (tsl/lib/histogram/histogram.cc) re-implemented for its summary output.
//
// Empty buckets are dropped the way TF's histogram summary drops them (EncodeToProto with
// preserve_zero_buckets = false): each run of empty buckets becomes one zero-count bucket ending
// at the run's last limit. Every non-empty bucket keeps its own limit and, since the run before it
// ends exactly at its left edge, its exact range, while a histogram of a few hundred thousand
// weights shrinks from 1551 buckets (25 KB per summary) to the few dozen its values span. The
// files then also match what TF itself writes for the same values.
#include "summary/histogram.h"

#include <algorithm>
#include <cfloat>
#include <cmath>

#include "error.h"

namespace mnist {
namespace {

std::vector<double> build_default_limits() {
  std::vector<double> positive;
  for (double v = 1.0e-12; v < 1.0e20; v *= 1.1) positive.push_back(v);
  positive.push_back(DBL_MAX);
  std::vector<double> limits;
  limits.reserve(2 * positive.size() + 1);
  for (auto it = positive.rbegin(); it != positive.rend(); ++it) limits.push_back(-*it);
  limits.push_back(0.0);
  limits.insert(limits.end(), positive.begin(), positive.end());
  return limits;
}

// Collapses runs of empty buckets as TF does; keeps at least one bucket.
void encode_buckets(const std::vector<double>& counts, Histogram& h) {
  const std::vector<double>& limits = default_bucket_limits();
  for (std::size_t i = 0; i < counts.size();) {
    double end = limits[i];
    double count = counts[i];
    ++i;
    if (count <= 0.0) {
      while (i < counts.size() && counts[i] <= 0.0) {
        end = limits[i];
        count = counts[i];
        ++i;
      }
    }
    h.bucket_limits.push_back(end);
    h.bucket_counts.push_back(count);
  }
}

}  // namespace

const std::vector<double>& default_bucket_limits() {
  static const std::vector<double> limits = build_default_limits();
  return limits;
}

std::size_t default_bucket_index(double value) {
  const std::vector<double>& limits = default_bucket_limits();
  const auto it = std::upper_bound(limits.begin(), limits.end(), value);
  // Only DBL_MAX itself lies past every limit; TF would index one past the end there.
  return std::min(static_cast<std::size_t>(it - limits.begin()), limits.size() - 1);
}

Histogram make_histogram(const float* values, std::size_t count) {
  std::vector<double> counts(default_bucket_limits().size(), 0.0);
  Histogram h;
  h.min = DBL_MAX;
  h.max = -DBL_MAX;
  for (std::size_t i = 0; i < count; ++i) {
    const double v = values[i];
    if (!std::isfinite(v))
      throw Error(ExitCode::kDiverged, "NaN or Inf among a histogram's values");
    counts[default_bucket_index(v)] += 1.0;
    h.min = std::min(h.min, v);
    h.max = std::max(h.max, v);
    h.sum += v;
    h.sum_squares += v * v;
  }
  h.num = static_cast<double>(count);
  encode_buckets(counts, h);
  return h;
}

Histogram histogram_from_counts(const std::vector<double>& counts, double min, double max,
                                double sum, double sum_squares) {
  if (counts.size() != default_bucket_limits().size()) {
    throw Error(ExitCode::kInternal,
                "histogram_from_counts: " + std::to_string(counts.size()) + " counts for " +
                    std::to_string(default_bucket_limits().size()) + " default buckets");
  }
  Histogram h;
  h.min = min;
  h.max = max;
  h.sum = sum;
  h.sum_squares = sum_squares;
  for (double c : counts) h.num += c;
  encode_buckets(counts, h);
  return h;
}

}  // namespace mnist
