// Helpers for the GPU tests: skip without a device, poisoned device buffers, normalised error.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "gpu/cuda_resources.h"

namespace mnist::gpu_test {

inline bool gpu_available() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

#define REQUIRE_GPU() \
  if (!::mnist::gpu_test::gpu_available()) GTEST_SKIP() << "no CUDA device visible"

// A device buffer filled with NaN (all bits set), so an element a kernel fails to write shows.
template <typename T>
DeviceBuffer<T> poisoned(std::size_t n) {
  DeviceBuffer<T> b(n);
  MNIST_CUDA_CHECK(cudaMemset(b.get(), 0xff, n * sizeof(T)));
  return b;
}

inline std::vector<float> random_floats(std::size_t n, std::mt19937& rng, float lo = -1.0f,
                                        float hi = 1.0f) {
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

// ||out - ref|| / ||ref||; NaN anywhere gives NaN, which fails every bound.
inline double normalised_error(const std::vector<float>& out, const std::vector<double>& ref) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    num += (out[i] - ref[i]) * (out[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-30);
}

// Two trainings from the same start, compared: ||a - b|| relative to how far training moved b from
// `start` (fp32 sums in another order differ in the last bits, and Adam's normalised update can
// turn a near-zero gradient's rounding into a different update, so absolute bounds would not do).
inline double relative_drift(const std::vector<float>& a, const std::vector<float>& b,
                             const std::vector<float>& start) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    num += double(a[i] - b[i]) * (a[i] - b[i]);
    den += double(b[i] - start[i]) * (b[i] - start[i]);
  }
  return std::sqrt(num / den);
}

// ||a - b|| / ||b||: for Adam's moments, which start at zero. Adam's update hardly changes when
// every gradient is scaled (m / sqrt(v)), so parameters alone cannot show a wrongly scaled
// gradient; its first moment is (1 - beta1) g after one step, and shows it at once.
inline double relative_error(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    num += double(a[i] - b[i]) * (a[i] - b[i]);
    den += double(b[i]) * b[i];
  }
  return std::sqrt(num / den);
}

inline ::testing::AssertionResult close(const std::vector<float>& out,
                                        const std::vector<double>& ref, double bound) {
  if (out.size() != ref.size())
    return ::testing::AssertionFailure() << "size " << out.size() << " vs " << ref.size();
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (std::isnan(out[i]))
      return ::testing::AssertionFailure() << "element " << i << " unwritten or NaN";
  }
  const double e = normalised_error(out, ref);
  if (e <= bound) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "normalised error " << e << " > " << bound;
}

}  // namespace mnist::gpu_test
