#include "gpu/speed_probe.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "gpu/cuda_resources.h"
#include "gpu/device.h"
#include "gpu/event_stopwatch.h"
#include "kernels/speed_probe.h"

namespace mnist {
namespace {

constexpr int kRepetitions = 5;
// The warm-up: at least 10 ms of FMAs (an idle GPU's clock takes a moment to rise to its maximum),
// then until two launches in a row agree within 2 %, at most 40 launches.
constexpr double kMinWarmupSeconds = 0.01;
constexpr int kMaxWarmups = 40;
// Steps of every FMA chain: ~1 ms per launch on an H200 (2048 threads x 8 chains x 16384 FMAs per
// SM at 128 lanes x 1.98 GHz), long enough that the launch's start and end do not count.
constexpr int kFmaSteps = 16384;
// The copy's buffers: 256 MiB each at least, and 4x the L2 cache, so the copy reads memory, not
// cache. Four copies per timed repetition (~0.5 ms on an H200) for the same reason as above.
constexpr std::size_t kMinCopyBytes = std::size_t(256) << 20;
constexpr int kCopiesPerRepetition = 4;

// A device attribute, 0 when the driver does not report it (CUDA 13 dropped the clocks from
// cudaDeviceProp; a driver may drop the attributes too).
int attribute(cudaDeviceAttr attr, int ordinal) {
  int value = 0;
  if (cudaDeviceGetAttribute(&value, attr, ordinal) == cudaSuccess) return value;
  (void)cudaGetLastError();  // cleared, so that no later launch check reports it
  return 0;
}

// Restores the current device when the probe ends, however it ends.
class CurrentDevice {
 public:
  explicit CurrentDevice(int ordinal) {
    MNIST_CUDA_CHECK(cudaGetDevice(&previous_));
    MNIST_CUDA_CHECK(cudaSetDevice(ordinal));
  }
  ~CurrentDevice() { cudaSetDevice(previous_); }
  CurrentDevice(const CurrentDevice&) = delete;
  CurrentDevice& operator=(const CurrentDevice&) = delete;

 private:
  int previous_ = 0;
};

// The median time of `repetitions` runs of `work`, each between two events.
template <class Work>
double median_seconds(cudaStream_t stream, int repetitions, Work&& work) {
  EventStopwatch watch(stream);
  watch.mark();
  for (int r = 0; r < repetitions; ++r) {
    work();
    watch.mark();
  }
  std::vector<double> us = watch.intervals_us();
  std::sort(us.begin(), us.end());
  return us[us.size() / 2] * 1e-6;
}

std::string fixed(double value, int decimals) {
  char text[32];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

// The status of `ratio` against a fail and a warn line (exactly on a line passes it).
health::Status status_of(double ratio, double fail, double warn) {
  if (ratio < fail) return health::Status::kFail;
  if (ratio < warn) return health::Status::kWarn;
  return health::Status::kPass;
}

std::string lines(double fail, double warn) {
  return "fails below " + fixed(fail, 2) + ", warns below " + fixed(warn, 2);
}

health::Check promise_check(const SpeedFigure& figure, const char* name, const char* what,
                            const char* unit, double fail, double warn) {
  health::Check c{name, figure.achieved, std::nullopt, unit, health::Status::kUnavailable, ""};
  const std::string measured = fixed(figure.achieved, 1) + " " + unit + " " + what;
  if (figure.promise <= 0) {
    c.detail = measured + "; promise unknown: " + figure.unknown_why;
    return c;
  }
  c.threshold = fail * figure.promise;
  c.status = status_of(figure.ratio(), fail, warn);
  c.detail = measured + ", " + fixed(figure.ratio(), 2) + " of the " + fixed(figure.promise, 1) +
             " its properties promise (" + lines(fail, warn) + ")";
  return c;
}

health::Check sibling_check(const std::vector<SpeedProbeResult>& gpus, std::size_t self,
                            SpeedFigure SpeedProbeResult::*figure, const char* name,
                            const char* unit, const SpeedThresholds& t) {
  const SpeedProbeResult& gpu = gpus[self];
  const double value = (gpu.*figure).achieved;
  health::Check c{name, value, std::nullopt, unit, health::Status::kUnavailable, ""};
  std::vector<double> others;
  for (std::size_t i = 0; i < gpus.size(); ++i)
    if (i != self && gpus[i].name == gpu.name) others.push_back((gpus[i].*figure).achieved);
  if (others.empty()) {
    c.detail = "no other " + gpu.name + " probed in this process";
    return c;
  }
  std::sort(others.begin(), others.end());
  const std::size_t n = others.size();
  const double median = n % 2 ? others[n / 2] : (others[n / 2 - 1] + others[n / 2]) / 2;
  if (median <= 0) {
    c.detail = "its siblings measured nothing";
    return c;
  }
  c.threshold = t.fail_sibling_ratio * median;
  c.status = status_of(value / median, t.fail_sibling_ratio, t.warn_sibling_ratio);
  c.detail = fixed(value, 1) + " " + unit + ", " + fixed(value / median, 2) + " of " +
             fixed(median, 1) + ", the median of the other " + std::to_string(n) + " " + gpu.name +
             " (" + lines(t.fail_sibling_ratio, t.warn_sibling_ratio) + ")";
  return c;
}

}  // namespace

int fp32_lanes_per_sm(int major, int minor) {
  switch (major) {
    case 5:
      return 128;
    case 6:
      return minor == 0 ? 64 : 128;
    case 7:
      return 64;
    case 8:
      return minor == 0 ? 64 : 128;
    case 9:
    case 10:
    case 11:
    case 12:
      return 128;
    default:
      return 0;
  }
}

SpeedFigure fp32_promise(const DeviceSpeedFacts& f) {
  SpeedFigure p;
  const int lanes = fp32_lanes_per_sm(f.major, f.minor);
  if (lanes == 0) {
    p.unknown_why = "compute capability " + std::to_string(f.major) + "." +
                    std::to_string(f.minor) + " is not in the FP32 throughput table";
  } else if (f.sm_clock_khz <= 0 || f.multiprocessors <= 0) {
    p.unknown_why = "the driver reports no SM clock (cudaDevAttrClockRate) or SM count";
  } else {
    p.promise = 2.0 * lanes * f.multiprocessors * (f.sm_clock_khz * 1e3) / 1e12;
  }
  return p;
}

SpeedFigure memory_promise(const DeviceSpeedFacts& f) {
  SpeedFigure p;
  if (f.memory_clock_khz <= 0 || f.memory_bus_bits <= 0) {
    p.unknown_why = "the driver reports no memory clock (cudaDevAttrMemoryClockRate) or bus width";
  } else {
    p.promise = 2.0 * (f.memory_clock_khz * 1e3) * (f.memory_bus_bits / 8.0) / 1e9;
  }
  return p;
}

SpeedProbeResult probe_speed(int ordinal) {
  const DeviceInfo info = device_info(ordinal);
  CurrentDevice current(ordinal);  // creates the context, which the probe's time leaves out
  const auto start = std::chrono::steady_clock::now();

  DeviceSpeedFacts facts;
  facts.major = info.major;
  facts.minor = info.minor;
  facts.multiprocessors = info.multiprocessors;
  facts.sm_clock_khz = attribute(cudaDevAttrClockRate, ordinal);
  facts.memory_clock_khz = attribute(cudaDevAttrMemoryClockRate, ordinal);
  facts.memory_bus_bits = attribute(cudaDevAttrGlobalMemoryBusWidth, ordinal);
  SpeedProbeResult r;
  r.ordinal = ordinal;
  r.name = info.name;
  r.fp32_tflops = fp32_promise(facts);
  r.memory_gbps = memory_promise(facts);

  CudaStream stream;
  const int threads = kernels::fma_throughput_threads();
  DeviceBuffer<float> sums(threads);
  const auto fma = [&] { kernels::fma_throughput(sums.get(), threads, kFmaSteps, stream.get()); };
  double previous = 0, warmed = 0;
  for (int i = 0; i < kMaxWarmups; ++i) {
    const double t = median_seconds(stream.get(), 1, fma);
    warmed += t;
    if (warmed >= kMinWarmupSeconds && std::abs(t - previous) <= 0.02 * previous) break;
    previous = t;
  }
  const double fmas = double(threads) * kernels::kFmaChains * kFmaSteps;
  r.fp32_tflops.achieved = 2 * fmas / median_seconds(stream.get(), kRepetitions, fma) / 1e12;

  const std::size_t l2_bytes = std::size_t(attribute(cudaDevAttrL2CacheSize, ordinal));
  const std::size_t count = std::max(kMinCopyBytes, 4 * l2_bytes) / sizeof(float4);
  DeviceBuffer<float4> from(count), to(count);
  MNIST_CUDA_CHECK(cudaMemsetAsync(from.get(), 0, count * sizeof(float4), stream.get()));
  const auto copy = [&] {
    for (int k = 0; k < kCopiesPerRepetition; ++k)
      kernels::copy_float4(from.get(), to.get(), count, stream.get());
  };
  median_seconds(stream.get(), 1, copy);  // first touch of the destination pages
  const double bytes = 2.0 * count * sizeof(float4) * kCopiesPerRepetition;
  r.memory_gbps.achieved = bytes / median_seconds(stream.get(), kRepetitions, copy) / 1e9;

  r.duration_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

std::vector<health::Check> evaluate_speed(const std::vector<SpeedProbeResult>& gpus,
                                          std::size_t which, const SpeedThresholds& t) {
  const SpeedProbeResult& gpu = gpus.at(which);
  return {promise_check(gpu.fp32_tflops, "fp32_throughput", "FP32 FMA", "TFLOP/s",
                        t.fail_fp32_ratio, t.warn_fp32_ratio),
          promise_check(gpu.memory_gbps, "memory_bandwidth", "copy (read + write)", "GB/s",
                        t.fail_memory_ratio, t.warn_memory_ratio),
          sibling_check(gpus, which, &SpeedProbeResult::fp32_tflops, "sibling_fp32_throughput",
                        "TFLOP/s", t),
          sibling_check(gpus, which, &SpeedProbeResult::memory_gbps, "sibling_memory_bandwidth",
                        "GB/s", t)};
}

}  // namespace mnist
