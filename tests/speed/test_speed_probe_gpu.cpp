// The speed probe on a real GPU (device 0): its kernels compute what they claim, and the probe
// measures figures near the device's promise, quickly. Skipped without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "gpu/cuda_resources.h"
#include "gpu/speed_probe.h"
#include "kernels/speed_probe.h"
#include "support/gpu_test_util.h"

namespace mnist {
namespace {

TEST(SpeedKernelsGpu, FmaChainsMatchTheHost) {
  REQUIRE_GPU();
  MNIST_CUDA_CHECK(cudaSetDevice(0));
  const int threads = kernels::fma_throughput_threads();
  ASSERT_GT(threads, 0);
  ASSERT_EQ(threads % 256, 0);
  const int steps = 4 * kernels::kFmaUnroll;
  DeviceBuffer<float> out = gpu_test::poisoned<float>(threads);
  kernels::fma_throughput(out.get(), threads, steps, nullptr);
  const std::vector<float> got = out.download();
  for (int t = 0; t < threads; t += 97) {  // every thread's start differs by its index in the block
    float sum = 0;
    for (int c = 0; c < kernels::kFmaChains; ++c) {
      float x = std::fma(float(t % 256), 1e-3f, float(c));
      for (int s = 0; s < steps; ++s) x = std::fma(x, 0.999f, 0.001f);
      sum += x;
    }
    ASSERT_FLOAT_EQ(got[t], sum) << "thread " << t;
  }
  for (int t = 0; t < threads; ++t) ASSERT_TRUE(std::isfinite(got[t])) << "thread " << t;
}

TEST(SpeedKernelsGpu, CopyCopiesEveryElementAndNoMore) {
  REQUIRE_GPU();
  MNIST_CUDA_CHECK(cudaSetDevice(0));
  // Not a multiple of the grid or of the four loads in flight: the tail loop runs too.
  const std::size_t count = 1000003, guard = 16;
  std::mt19937 rng(7);
  const std::vector<float> host = gpu_test::random_floats(4 * count, rng);
  DeviceBuffer<float> from(host);
  DeviceBuffer<float> to = gpu_test::poisoned<float>(4 * (count + guard));
  kernels::copy_float4(reinterpret_cast<const float4*>(from.get()),
                       reinterpret_cast<float4*>(to.get()), count, nullptr);
  const std::vector<float> got = to.download();
  ASSERT_EQ(std::memcmp(got.data(), host.data(), host.size() * sizeof(float)), 0);
  for (std::size_t i = 4 * count; i < got.size(); ++i)
    ASSERT_TRUE(std::isnan(got[i])) << "wrote past the end at float " << i;
}

TEST(SpeedProbeGpu, Device0MeetsItsPromiseQuickly) {
  REQUIRE_GPU();
  const SpeedProbeResult r = probe_speed(0);
  std::printf(
      "GPU 0 (%s): FP32 %.1f of %.1f TFLOP/s (%.3f); copy %.0f of %.0f GB/s (%.3f, read + "
      "write); probe %.1f ms\n",
      r.name.c_str(), r.fp32_tflops.achieved, r.fp32_tflops.promise, r.fp32_tflops.ratio(),
      r.memory_gbps.achieved, r.memory_gbps.promise, r.memory_gbps.ratio(), r.duration_s * 1e3);
  for (const health::Check& c : evaluate_speed({r}, 0))
    std::printf("  %-26s %-11s %s\n", c.name.c_str(), health::status_name(c.status),
                c.detail.c_str());
  ASSERT_TRUE(r.fp32_tflops.unknown_why.empty()) << r.fp32_tflops.unknown_why;
  ASSERT_TRUE(r.memory_gbps.unknown_why.empty()) << r.memory_gbps.unknown_why;
  // Above 1 would mean a wrong promise or a wrong count; far below, a slow GPU or a weak kernel.
  EXPECT_GT(r.fp32_tflops.ratio(), 0.3);
  EXPECT_LE(r.fp32_tflops.ratio(), 1.05);
  EXPECT_GT(r.memory_gbps.ratio(), 0.3);
  EXPECT_LE(r.memory_gbps.ratio(), 1.05);
  EXPECT_LT(r.duration_s, 0.5);
  int current = -1;
  MNIST_CUDA_CHECK(cudaGetDevice(&current));
  EXPECT_EQ(current, 0);
}

}  // namespace
}  // namespace mnist
