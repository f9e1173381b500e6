// The GPU health layer against the REAL NVML on device 0: prints every reading and check (so a
// run's log can be quoted) and holds a healthy GPU to passing every check that can fail the run.
// Skips without a CUDA device or without NVML.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>

#include "gpu/device.h"
#include "gpu/health.h"
#include "gpu/nvml.h"
#include "support/gpu_test_util.h"

namespace mnist::health {
namespace {

template <typename T>
std::string text(const nvml::Reading<T>& reading) {
  if (!reading.ok())
    return std::string(reading.status == nvml::ReadStatus::kNotSupported ? "not supported"
                                                                         : "failed") +
           " (" + reading.error + ")";
  if constexpr (std::is_same_v<T, std::string>)
    return reading.value;
  else if constexpr (std::is_same_v<T, bool>)
    return reading.value ? "yes" : "no";
  else
    return std::to_string(reading.value);
}

std::string text(const nvml::Reading<nvml::RemappedRows>& rows) {
  if (!rows.ok()) return text(nvml::Reading<int>{rows.status, 0, rows.error});
  return "corrected " + std::to_string(rows.value.corrected) + ", uncorrected " +
         std::to_string(rows.value.uncorrected) + ", pending " +
         (rows.value.pending ? "yes" : "no") + ", failed " + (rows.value.failed ? "yes" : "no");
}

std::string text(const nvml::Reading<nvml::NvLinks>& links) {
  if (!links.ok()) return text(nvml::Reading<int>{links.status, 0, links.error});
  return std::to_string(links.value.active) + " active, " +
         std::to_string(links.value.down.size()) + " down";
}

void print(const char* when, const nvml::DeviceReading& r) {
  std::cout << "--- " << when << " reading\n"
            << "name " << text(r.name) << "\nuuid " << text(r.uuid) << "\nclock_event_reasons "
            << text(r.sample.clock_event_reasons) << "\ntemperature_c "
            << text(r.sample.temperature_c) << "\nslowdown_temperature_c "
            << text(r.slowdown_temperature_c) << "\nshutdown_temperature_c "
            << text(r.shutdown_temperature_c) << "\npower_mw " << text(r.sample.power_mw)
            << "\npower_limit_mw " << text(r.power_limit_mw) << "\npcie_generation "
            << text(r.sample.pcie_generation) << "\npcie_max_generation "
            << text(r.pcie_max_generation) << "\npcie_gpu_max_generation "
            << text(r.pcie_gpu_max_generation) << "\npcie_width " << text(r.sample.pcie_width)
            << "\npcie_max_width " << text(r.pcie_max_width) << "\nsm_clock_mhz "
            << text(r.sample.sm_clock_mhz) << "\nsm_max_clock_mhz " << text(r.sm_max_clock_mhz)
            << "\nmemory_clock_mhz " << text(r.memory_clock_mhz) << "\nmemory_max_clock_mhz "
            << text(r.memory_max_clock_mhz) << "\necc_enabled " << text(r.ecc_enabled)
            << "\necc_corrected_volatile " << text(r.ecc_corrected_volatile)
            << "\necc_uncorrected_volatile " << text(r.ecc_uncorrected_volatile)
            << "\necc_corrected_aggregate " << text(r.ecc_corrected_aggregate)
            << "\necc_uncorrected_aggregate " << text(r.ecc_uncorrected_aggregate)
            << "\nretired_pages_pending " << text(r.retired_pages_pending) << "\nretired_pages "
            << text(r.retired_pages) << "\nremapped_rows " << text(r.remapped_rows) << "\nnvlinks "
            << text(r.nvlinks) << "\n";
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

TEST(HealthGpu, RealNvmlFindsDevice0Healthy) {
  REQUIRE_GPU();
  unsetenv("MNIST_TEST_NVML_LIBRARY");
  char bus_id[32] = {};
  ASSERT_EQ(cudaDeviceGetPCIBusId(bus_id, sizeof bus_id, 0), cudaSuccess);
  {
    const nvml::Nvml probe;
    if (!probe.available()) GTEST_SKIP() << "no NVML: " << probe.unavailable_reason();
    std::cout << "driver " << text(probe.driver_version()) << ", PCI " << bus_id << "\n";
  }

  Monitor monitor({bus_id});
  // About 1.5 s of host-to-device copies: the GPU busy and its link in use while it is sampled.
  const std::size_t bytes = std::size_t(256) << 20;
  void* host = nullptr;
  void* device = nullptr;
  ASSERT_EQ(cudaMallocHost(&host, bytes), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&device, bytes), cudaSuccess);
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(1500);
  while (std::chrono::steady_clock::now() < until)
    ASSERT_EQ(cudaMemcpy(device, host, bytes, cudaMemcpyHostToDevice), cudaSuccess);
  cudaFree(device);
  cudaFreeHost(host);
  const auto gpus = monitor.finish();

  ASSERT_EQ(gpus.size(), 1u);
  const GpuHealth& gpu = gpus[0];
  print("start", gpu.start);
  print("end", gpu.end);
  std::cout << "--- during the run: " << gpu.during.samples << " samples, clock events "
            << text(gpu.during.clock_event_reasons) << ", peak temperature "
            << text(gpu.during.peak_temperature_c) << " C, peak power "
            << text(gpu.during.peak_power_mw) << " mW, top PCIe gen "
            << text(gpu.during.top_pcie_generation) << " x" << text(gpu.during.top_pcie_width)
            << ", peak SM clock " << text(gpu.during.peak_sm_clock_mhz) << " MHz, events "
            << gpu.during.events.size() << " (watched: " << text(gpu.during.events_watched)
            << ")\n--- checks: " << status_name(gpu.status()) << "\n";
  for (const auto& c : gpu.checks) {
    std::cout << c.name << " " << status_name(c.status) << " value ";
    if (const double* number = std::get_if<double>(&c.value))
      std::cout << *number;
    else
      std::cout << std::get<std::string>(c.value);
    std::cout << " " << c.unit << (c.threshold ? " threshold " + std::to_string(*c.threshold) : "")
              << ": " << c.detail << "\n";
  }

  ASSERT_NE(gpu.checks[0].name, "nvml") << gpu.checks[0].detail;
  EXPECT_EQ(lower(gpu.end.uuid.value), lower(device_info(0).uuid))
      << "the bus id found another GPU";
  ASSERT_TRUE(gpu.end.sample.pcie_width.ok()) << gpu.end.sample.pcie_width.error;
  EXPECT_GT(gpu.end.sample.pcie_width.value, 0u);
  ASSERT_TRUE(gpu.end.sample.temperature_c.ok()) << gpu.end.sample.temperature_c.error;
  EXPECT_GE(gpu.end.sample.temperature_c.value, 1u);
  EXPECT_LE(gpu.end.sample.temperature_c.value, 120u);
  ASSERT_TRUE(gpu.end.power_limit_mw.ok()) << gpu.end.power_limit_mw.error;
  EXPECT_GT(gpu.end.power_limit_mw.value, 0u);
  EXPECT_GE(gpu.during.samples, 3u);
  for (const auto& c : gpu.checks) EXPECT_NE(c.status, Status::kFail) << c.name << ": " << c.detail;
}

}  // namespace
}  // namespace mnist::health
