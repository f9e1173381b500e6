// REQUIRE_GPU's decision (gpu_test_util.h), without a GPU: a machine without an NVIDIA GPU skips,
// one whose GPU CUDA cannot use fails.
#include <gtest/gtest.h>

#include "support/gpu_test_util.h"

namespace mnist::gpu_test {
namespace {

TEST(GpuState, UsableWithADeviceCounted) {
  EXPECT_EQ(gpu_state(cudaSuccess, 1, true), Gpu::kUsable);
  EXPECT_EQ(gpu_state(cudaSuccess, 8, false), Gpu::kUsable);
}

TEST(GpuState, AbsentWhenCudaCountsNone) {
  EXPECT_EQ(gpu_state(cudaSuccess, 0, true), Gpu::kAbsent);
  EXPECT_EQ(gpu_state(cudaErrorNoDevice, 0, true), Gpu::kAbsent) << "CUDA_VISIBLE_DEVICES=''";
  EXPECT_EQ(gpu_state(cudaErrorNoDevice, 0, false), Gpu::kAbsent);
}

TEST(GpuState, AbsentWithoutDriverOrDeviceNode) {
  EXPECT_EQ(gpu_state(cudaErrorInsufficientDriver, 0, false), Gpu::kAbsent);
  EXPECT_EQ(gpu_state(cudaErrorInitializationError, 0, false), Gpu::kAbsent);
}

TEST(GpuState, BrokenWhenADeviceNodeExistsButCudaFails) {
  for (const cudaError_t status :
       {cudaErrorInsufficientDriver, cudaErrorInitializationError, cudaErrorSystemDriverMismatch,
        cudaErrorUnknown, cudaErrorDevicesUnavailable}) {
    EXPECT_EQ(gpu_state(status, 0, true), Gpu::kBroken) << cudaGetErrorName(status);
  }
}

TEST(GpuState, ThisMachinesProbeIsConsistent) {
  const GpuProbe& probe = gpu_probe();
  EXPECT_FALSE(probe.why.empty());
  if (!nvidia_device_node()) {
    EXPECT_NE(probe.state, Gpu::kBroken) << probe.why;
  }
  std::cout << probe.why << "\n";
}

}  // namespace
}  // namespace mnist::gpu_test
