// The device description the verdict and --benchmark_out use (src/gpu/device.h), against CUDA's
// own answers. Skips without a GPU.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <regex>

#include "app/report.h"
#include "gpu/device.h"
#include "support/gpu_test_util.h"

namespace mnist {
namespace {

std::string lowercase(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

TEST(DeviceInfo, MatchesCuda) {
  REQUIRE_GPU();
  const GpuProbe probe = probe_gpus();
  std::string error;
  const std::vector<DeviceInfo> all = visible_devices(&error);
  EXPECT_EQ(error, "");
  ASSERT_EQ(static_cast<int>(all.size()), probe.device_count);
  for (const DeviceInfo& d : all) {
    SCOPED_TRACE(d.ordinal);
    cudaDeviceProp prop{};
    ASSERT_EQ(cudaGetDeviceProperties(&prop, d.ordinal), cudaSuccess);
    EXPECT_EQ(d.name, prop.name);
    EXPECT_FALSE(d.name.empty());
    EXPECT_EQ(d.major, prop.major);
    EXPECT_EQ(d.minor, prop.minor);
    EXPECT_GE(d.major, 7);
    EXPECT_EQ(d.total_memory_bytes, prop.totalGlobalMem);
    EXPECT_GT(d.total_memory_bytes, 1ULL << 30);
    EXPECT_EQ(d.multiprocessors, prop.multiProcessorCount);
    // CUDA's own bus id string: same device, domain:bus:device.function.
    char bus_id[64] = "";
    ASSERT_EQ(cudaDeviceGetPCIBusId(bus_id, sizeof bus_id, d.ordinal), cudaSuccess);
    EXPECT_EQ(lowercase(d.pci_bus_id), lowercase(bus_id));
    EXPECT_TRUE(std::regex_match(
        d.uuid, std::regex("GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")))
        << d.uuid;
    EXPECT_NE(d.uuid, "GPU-00000000-0000-0000-0000-000000000000");
    const DeviceInfo again = device_info(d.ordinal);
    EXPECT_EQ(again.uuid, d.uuid);
  }
  EXPECT_GE(probe.driver_version, probe.runtime_version);
  EXPECT_EQ(cuda_version_string(13000), "13.0");
  EXPECT_EQ(cuda_version_string(12080), "12.8");
  EXPECT_EQ(cuda_version_string(0), "none");
}

TEST(DeviceInfo, RecordedForTheVerdict) {
  REQUIRE_GPU();
  std::vector<const char*> argv = {"mnist-train"};
  RunRecord r(1, argv.data());
  r.note_gpus(true);
  ASSERT_EQ(r.used.size(), 1u);
  EXPECT_EQ(r.used[0].uuid, device_info(0).uuid);
  const auto j = device_json(r.used[0]);
  EXPECT_EQ(j["uuid"], r.used[0].uuid);
  EXPECT_EQ(j["compute_capability"],
            std::to_string(r.used[0].major) + "." + std::to_string(r.used[0].minor));
}

TEST(DeviceInfo, AbsentDeviceIsAnError) {
  REQUIRE_GPU();
  try {
    device_info(probe_gpus().device_count);
    ADD_FAILURE() << "no error for a device past the last";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kGpuUnusable);
  }
}

}  // namespace
}  // namespace mnist
