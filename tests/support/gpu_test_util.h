// Helpers for the GPU tests: skip without a device (fail with a broken one), poisoned device
// buffers, normalised error.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <random>
#include <string>
#include <system_error>
#include <vector>

#include "gpu/cuda_resources.h"

namespace mnist::gpu_test {

// Whether this machine has an NVIDIA GPU, from the device list alone: a GPU test skips only where
// there is none, so a crash, a broken driver or a failed initialisation on a GPU machine fails the
// test instead of reading as "skipped".
enum class Gpu { kUsable, kAbsent, kBroken };

// The decision from cudaGetDeviceCount's result and whether a device node (/dev/nvidiaN) exists:
// no device (cudaErrorNoDevice, or a count of 0) is absent; any other error is absent only where
// no device node exists either (a machine without the driver), else broken.
inline Gpu gpu_state(cudaError_t status, int count, bool device_node) {
  if (status == cudaSuccess) return count > 0 ? Gpu::kUsable : Gpu::kAbsent;
  if (status == cudaErrorNoDevice || !device_node) return Gpu::kAbsent;
  return Gpu::kBroken;
}

inline bool nvidia_device_node() {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/dev", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() > 6 && name.rfind("nvidia", 0) == 0 &&
        name.find_first_not_of("0123456789", 6) == std::string::npos)
      return true;
  }
  return false;
}

struct GpuProbe {
  Gpu state;
  std::string why;
};

// Probed once per process.
inline const GpuProbe& gpu_probe() {
  static const GpuProbe probe = [] {
    int count = 0;
    const cudaError_t status = cudaGetDeviceCount(&count);
    const bool node = nvidia_device_node();
    const Gpu state = gpu_state(status, count, node);
    std::string why = status == cudaSuccess
                          ? std::to_string(count) + " CUDA device(s)"
                          : std::string("cudaGetDeviceCount: ") + cudaGetErrorName(status) + " (" +
                                cudaGetErrorString(status) + ")";
    if (state == Gpu::kAbsent) why = "no CUDA device visible: " + why;
    if (state == Gpu::kBroken) why = "an NVIDIA device node exists, but CUDA fails: " + why;
    return GpuProbe{state, why};
  }();
  return probe;
}

inline bool gpu_available() { return gpu_probe().state == Gpu::kUsable; }

// Skips the test without a GPU, fails it where a GPU exists but CUDA cannot use it.
#define REQUIRE_GPU()                                                 \
  if (const auto& mnist_gpu_probe_ = ::mnist::gpu_test::gpu_probe();  \
      mnist_gpu_probe_.state == ::mnist::gpu_test::Gpu::kAbsent)      \
    GTEST_SKIP() << mnist_gpu_probe_.why;                             \
  else if (mnist_gpu_probe_.state == ::mnist::gpu_test::Gpu::kBroken) \
  GTEST_FAIL() << mnist_gpu_probe_.why

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
