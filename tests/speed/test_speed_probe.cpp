// The speed probe's arithmetic and verdict (src/gpu/speed_probe.h) on injected figures: no GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "gpu/speed_probe.h"
#include "kernels/speed_probe.h"

namespace mnist {
namespace {

// An H200's facts as CUDA reports them: 132 SMs at 1980 MHz; the memory figures are the H100
// SXM's (2619 MHz, 5120 bits: the published 3.35 TB/s).
DeviceSpeedFacts h200_facts() {
  DeviceSpeedFacts f;
  f.major = 9;
  f.minor = 0;
  f.multiprocessors = 132;
  f.sm_clock_khz = 1980000;
  f.memory_clock_khz = 2619000;
  f.memory_bus_bits = 5120;
  return f;
}

// A GPU whose promises are 100 TFLOP/s and 1000 GB/s, measured at the given figures.
SpeedProbeResult measured(int ordinal, double tflops, double gbps,
                          const std::string& name = "NVIDIA H200") {
  SpeedProbeResult r;
  r.ordinal = ordinal;
  r.name = name;
  r.fp32_tflops.promise = 100;
  r.fp32_tflops.achieved = tflops;
  r.memory_gbps.promise = 1000;
  r.memory_gbps.achieved = gbps;
  return r;
}

// The same, measured at the given fractions of its promises.
SpeedProbeResult gpu(int ordinal, double fp32_fraction, double memory_fraction,
                     const std::string& name = "NVIDIA H200") {
  return measured(ordinal, 100 * fp32_fraction, 1000 * memory_fraction, name);
}

// The largest double below x.
double below(double x) { return std::nextafter(x, 0.0); }

const health::Check& find(const std::vector<health::Check>& checks, const std::string& name) {
  for (const health::Check& c : checks)
    if (c.name == name) return c;
  throw std::logic_error("no check " + name);
}

// The status of check `name` of gpus[which].
health::Status status(const std::vector<SpeedProbeResult>& gpus, std::size_t which,
                      const std::string& name) {
  return find(evaluate_speed(gpus, which), name).status;
}

double value(const health::Check& c) { return std::get<double>(c.value); }

TEST(SpeedPromise, LanesPerSmFollowTheProgrammingGuide) {
  EXPECT_EQ(fp32_lanes_per_sm(6, 0), 64);
  EXPECT_EQ(fp32_lanes_per_sm(6, 1), 128);
  EXPECT_EQ(fp32_lanes_per_sm(7, 0), 64);
  EXPECT_EQ(fp32_lanes_per_sm(7, 5), 64);
  EXPECT_EQ(fp32_lanes_per_sm(8, 0), 64);
  EXPECT_EQ(fp32_lanes_per_sm(8, 6), 128);
  EXPECT_EQ(fp32_lanes_per_sm(8, 9), 128);
  EXPECT_EQ(fp32_lanes_per_sm(9, 0), 128);
  EXPECT_EQ(fp32_lanes_per_sm(10, 0), 128);
  EXPECT_EQ(fp32_lanes_per_sm(12, 0), 128);
  EXPECT_EQ(fp32_lanes_per_sm(3, 5), 0);
  EXPECT_EQ(fp32_lanes_per_sm(13, 0), 0);
}

TEST(SpeedPromise, H200FiguresGiveThePublishedPeaks) {
  const SpeedFigure fp32 = fp32_promise(h200_facts());
  EXPECT_DOUBLE_EQ(fp32.promise, 2.0 * 128 * 132 * 1.98e9 / 1e12);  // 66.9: the published 67
  EXPECT_TRUE(fp32.unknown_why.empty());
  const SpeedFigure memory = memory_promise(h200_facts());
  EXPECT_DOUBLE_EQ(memory.promise, 3352.32);  // 2 x 2619 MHz x 640 bytes: the published 3.35 TB/s
  EXPECT_TRUE(memory.unknown_why.empty());
  EXPECT_EQ(fp32.achieved, 0);
  EXPECT_EQ(fp32.ratio(), 0);
}

TEST(SpeedPromise, UnknownWhereAFactIsMissing) {
  DeviceSpeedFacts no_clock = h200_facts();
  no_clock.sm_clock_khz = 0;
  EXPECT_EQ(fp32_promise(no_clock).promise, 0);
  EXPECT_NE(fp32_promise(no_clock).unknown_why.find("cudaDevAttrClockRate"), std::string::npos);

  DeviceSpeedFacts future = h200_facts();
  future.major = 13;
  EXPECT_EQ(fp32_promise(future).promise, 0);
  EXPECT_NE(fp32_promise(future).unknown_why.find("13.0"), std::string::npos);

  DeviceSpeedFacts no_memory_clock = h200_facts();
  no_memory_clock.memory_clock_khz = 0;
  EXPECT_EQ(memory_promise(no_memory_clock).promise, 0);
  EXPECT_NE(memory_promise(no_memory_clock).unknown_why.find("cudaDevAttrMemoryClockRate"),
            std::string::npos);
  DeviceSpeedFacts no_bus = h200_facts();
  no_bus.memory_bus_bits = 0;
  EXPECT_EQ(memory_promise(no_bus).promise, 0);
}

TEST(SpeedVerdict, HealthyGpuPassesWithFourChecks) {
  const std::vector<health::Check> checks = evaluate_speed({gpu(0, 0.9, 0.87)}, 0);
  ASSERT_EQ(checks.size(), 4u);
  EXPECT_EQ(checks[0].name, "fp32_throughput");
  EXPECT_EQ(checks[1].name, "memory_bandwidth");
  EXPECT_EQ(checks[2].name, "sibling_fp32_throughput");
  EXPECT_EQ(checks[3].name, "sibling_memory_bandwidth");
  EXPECT_EQ(checks[0].status, health::Status::kPass) << checks[0].detail;
  EXPECT_EQ(checks[1].status, health::Status::kPass) << checks[1].detail;
  EXPECT_DOUBLE_EQ(value(checks[0]), 90);
  ASSERT_TRUE(checks[0].threshold);
  EXPECT_DOUBLE_EQ(*checks[0].threshold, 50);  // the fail line, in the check's unit
  EXPECT_EQ(checks[0].unit, "TFLOP/s");
  EXPECT_DOUBLE_EQ(value(checks[1]), 870);
  ASSERT_TRUE(checks[1].threshold);
  EXPECT_DOUBLE_EQ(*checks[1].threshold, 500);
  EXPECT_EQ(checks[1].unit, "GB/s");
  EXPECT_NE(checks[0].detail.find("0.90 of the 100.0"), std::string::npos) << checks[0].detail;
  // Alone in its process, a GPU has no siblings to be compared with.
  EXPECT_EQ(checks[2].status, health::Status::kUnavailable);
  EXPECT_EQ(checks[3].status, health::Status::kUnavailable);
  EXPECT_FALSE(checks[2].threshold);
  EXPECT_NE(checks[2].detail.find("no other NVIDIA H200"), std::string::npos);
}

TEST(SpeedVerdict, HalfClockFailsFp32Throughput) {
  // Half the clock halves the FMA rate of a healthy 0.9; memory does not depend on the SM clock.
  const std::vector<SpeedProbeResult> gpus = {gpu(0, 0.45, 0.87)};
  EXPECT_EQ(status(gpus, 0, "fp32_throughput"), health::Status::kFail);
  EXPECT_EQ(status(gpus, 0, "memory_bandwidth"), health::Status::kPass);
}

TEST(SpeedVerdict, SlowMemoryFailsMemoryBandwidth) {
  const std::vector<SpeedProbeResult> gpus = {gpu(0, 0.9, 0.43)};
  EXPECT_EQ(status(gpus, 0, "fp32_throughput"), health::Status::kPass);
  EXPECT_EQ(status(gpus, 0, "memory_bandwidth"), health::Status::kFail);
}

TEST(SpeedVerdict, ThrottledGpuWarns) {
  const std::vector<SpeedProbeResult> gpus = {gpu(0, 0.6, 0.6)};
  EXPECT_EQ(status(gpus, 0, "fp32_throughput"), health::Status::kWarn);
  EXPECT_EQ(status(gpus, 0, "memory_bandwidth"), health::Status::kWarn);
}

TEST(SpeedVerdict, GpuFarBelowItsSiblingsFailsTheSiblingCheck) {
  // GPU 2 is above its own fail line (0.6 of its promise) but 0.67 of its siblings.
  const std::vector<SpeedProbeResult> gpus = {gpu(0, 0.9, 0.87), gpu(1, 0.91, 0.88),
                                              gpu(2, 0.6, 0.87), gpu(3, 0.89, 0.30)};
  const std::vector<health::Check> checks = evaluate_speed(gpus, 2);
  const health::Check& slow = find(checks, "sibling_fp32_throughput");
  EXPECT_EQ(slow.status, health::Status::kFail) << slow.detail;
  ASSERT_TRUE(slow.threshold);
  EXPECT_DOUBLE_EQ(*slow.threshold, 0.8 * 90);  // the median of 89, 90 and 91
  EXPECT_NE(slow.detail.find("other 3 NVIDIA H200"), std::string::npos) << slow.detail;
  EXPECT_EQ(find(checks, "fp32_throughput").status, health::Status::kWarn);
  EXPECT_EQ(status(gpus, 3, "sibling_memory_bandwidth"), health::Status::kFail);
  for (std::size_t which : {0, 1, 3})
    EXPECT_EQ(status(gpus, which, "sibling_fp32_throughput"), health::Status::kPass);
  for (std::size_t which : {0, 1, 2})
    EXPECT_EQ(status(gpus, which, "sibling_memory_bandwidth"), health::Status::kPass);
}

TEST(SpeedVerdict, SlowPairIsCaughtByTheSiblingCheckOfTheSlowOne) {
  // Two GPUs: the median of a GPU's siblings is the other one; only the slow one fails.
  const std::vector<SpeedProbeResult> gpus = {gpu(0, 0.9, 0.87), gpu(1, 0.6, 0.87)};
  EXPECT_EQ(status(gpus, 0, "sibling_fp32_throughput"), health::Status::kPass);
  EXPECT_EQ(status(gpus, 1, "sibling_fp32_throughput"), health::Status::kFail);
}

TEST(SpeedVerdict, MedianOfAnEvenNumberOfSiblingsIsTheMeanOfTheMiddleTwo) {
  // GPU 2's siblings: 100 and 60 TFLOP/s, median 80; its 70 is 0.875 of that.
  const std::vector<SpeedProbeResult> gpus = {measured(0, 100, 1000), measured(1, 60, 1000),
                                              measured(2, 70, 1000)};
  const health::Check c = find(evaluate_speed(gpus, 2), "sibling_fp32_throughput");
  EXPECT_EQ(c.status, health::Status::kWarn) << c.detail;
  ASSERT_TRUE(c.threshold);
  EXPECT_DOUBLE_EQ(*c.threshold, 0.8 * 80);
}

TEST(SpeedVerdict, SiblingsAreGpusOfTheSameName) {
  const std::vector<SpeedProbeResult> gpus = {gpu(0, 0.9, 0.87), gpu(1, 0.9, 0.87),
                                              gpu(2, 0.1, 0.1, "NVIDIA A100-SXM4-80GB")};
  EXPECT_EQ(status(gpus, 0, "sibling_fp32_throughput"), health::Status::kPass);
  EXPECT_EQ(status(gpus, 2, "sibling_fp32_throughput"), health::Status::kUnavailable);
  EXPECT_EQ(status(gpus, 2, "sibling_memory_bandwidth"), health::Status::kUnavailable);
}

TEST(SpeedVerdict, UnknownPromiseIsUnavailableButSiblingsStillCompare) {
  std::vector<SpeedProbeResult> gpus = {gpu(0, 0.9, 0.87), gpu(1, 0.45, 0.87)};
  for (SpeedProbeResult& g : gpus) {
    g.fp32_tflops.promise = 0;
    g.fp32_tflops.unknown_why = "the driver reports no SM clock";
  }
  const std::vector<health::Check> checks = evaluate_speed(gpus, 1);
  const health::Check& fp32 = find(checks, "fp32_throughput");
  EXPECT_EQ(fp32.status, health::Status::kUnavailable);
  EXPECT_FALSE(fp32.threshold);
  EXPECT_DOUBLE_EQ(value(fp32), 45);
  EXPECT_NE(fp32.detail.find("promise unknown: the driver reports no SM clock"), std::string::npos)
      << fp32.detail;
  EXPECT_EQ(find(checks, "memory_bandwidth").status, health::Status::kPass);
  EXPECT_EQ(find(checks, "sibling_fp32_throughput").status, health::Status::kFail);
}

TEST(SpeedVerdict, ExactlyOnALinePassesIt) {
  // Promises of 100 TFLOP/s and 1000 GB/s: the lines are at 50 and 70 TFLOP/s, 500 and 700 GB/s.
  const auto fp32 = [](double tflops) {
    return status({measured(0, tflops, 870)}, 0, "fp32_throughput");
  };
  const auto memory = [](double gbps) {
    return status({measured(0, 90, gbps)}, 0, "memory_bandwidth");
  };
  EXPECT_EQ(fp32(50), health::Status::kWarn);
  EXPECT_EQ(fp32(below(50)), health::Status::kFail);
  EXPECT_EQ(fp32(70), health::Status::kPass);
  EXPECT_EQ(fp32(below(70)), health::Status::kWarn);
  EXPECT_EQ(memory(500), health::Status::kWarn);
  EXPECT_EQ(memory(below(500)), health::Status::kFail);
  EXPECT_EQ(memory(700), health::Status::kPass);
  EXPECT_EQ(memory(below(700)), health::Status::kWarn);
}

TEST(SpeedVerdict, ExactlyOnASiblingLinePassesIt) {
  // Two siblings at 100 TFLOP/s and 1000 GB/s: the lines are at 0.8 and 0.9 of those.
  const auto with = [](double tflops, double gbps) {
    return std::vector<SpeedProbeResult>{measured(0, 100, 1000), measured(1, 100, 1000),
                                         measured(2, tflops, gbps)};
  };
  const char* fp32 = "sibling_fp32_throughput";
  const char* memory = "sibling_memory_bandwidth";
  EXPECT_EQ(status(with(80, 1000), 2, fp32), health::Status::kWarn);
  EXPECT_EQ(status(with(below(80), 1000), 2, fp32), health::Status::kFail);
  EXPECT_EQ(status(with(90, 1000), 2, fp32), health::Status::kPass);
  EXPECT_EQ(status(with(below(90), 1000), 2, fp32), health::Status::kWarn);
  EXPECT_EQ(status(with(100, 800), 2, memory), health::Status::kWarn);
  EXPECT_EQ(status(with(100, below(800)), 2, memory), health::Status::kFail);
  EXPECT_EQ(status(with(100, 900), 2, memory), health::Status::kPass);
  EXPECT_EQ(status(with(100, below(900)), 2, memory), health::Status::kWarn);
}

TEST(SpeedVerdict, ThresholdsAreTheCallers) {
  SpeedThresholds strict;
  strict.fail_fp32_ratio = 0.95;
  strict.warn_fp32_ratio = 0.98;
  const std::vector<health::Check> checks = evaluate_speed({gpu(0, 0.9, 0.87)}, 0, strict);
  EXPECT_EQ(checks[0].status, health::Status::kFail);
  ASSERT_TRUE(checks[0].threshold);
  EXPECT_DOUBLE_EQ(*checks[0].threshold, 95);
  EXPECT_NE(checks[0].detail.find("fails below 0.95, warns below 0.98"), std::string::npos)
      << checks[0].detail;
}

// The launchers refuse shapes they cannot run before touching the device.
TEST(SpeedKernels, LaunchersRefuseBadShapes) {
  EXPECT_THROW(kernels::fma_throughput(nullptr, 100, kernels::kFmaUnroll, nullptr),
               std::invalid_argument);
  EXPECT_THROW(kernels::fma_throughput(nullptr, 256, kernels::kFmaUnroll + 1, nullptr),
               std::invalid_argument);
  EXPECT_THROW(kernels::fma_throughput(nullptr, 256, 0, nullptr), std::invalid_argument);
  EXPECT_THROW(kernels::copy_float4(nullptr, nullptr, 0, nullptr), std::invalid_argument);
}

}  // namespace
}  // namespace mnist
