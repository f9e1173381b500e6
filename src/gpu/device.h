// Finding the GPU, saying clearly why when there is none, and describing the devices for the
// verdict (result.json, the termination message) and --benchmark_out in one way.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace mnist {

struct GpuProbe {
  int device_count = 0;
  int driver_version = 0;   // CUDA version the driver supports (e.g. 13000); 0: no driver
  int runtime_version = 0;  // CUDA runtime this binary was built with
  std::string error;        // empty when cudaGetDeviceCount succeeded
};

GpuProbe probe_gpus();

// One line for a log or an error: what was looked for and what was found.
std::string describe(const GpuProbe& probe);

// A CUDA version number as people write it: 13000 -> "13.0"; 0 -> "none".
std::string cuda_version_string(int version);

// One CUDA device as the verdict names it.
struct DeviceInfo {
  int ordinal = 0;           // CUDA's device number in this process
  std::string name;          // "NVIDIA H200"
  int major = 0, minor = 0;  // compute capability
  int multiprocessors = 0;
  std::uint64_t total_memory_bytes = 0;
  std::string pci_bus_id;  // domain:bus:device.function, "0000:00:06.0"
  std::string uuid;        // as nvidia-smi prints it: "GPU-8f6e…" (36 hex digits)
};

// How errors and logs name a GPU: "GPU 3 (NVIDIA H200, PCI 0000:1a:00.0, GPU-8f6e…)".
std::string gpu_label(const DeviceInfo& device);

// The properties of device `ordinal`. Throws Error(kGpuUnusable) naming the CUDA error.
DeviceInfo device_info(int ordinal);

// Every device CUDA sees (none without a driver or device: probe_gpus says why). Never throws: a
// device whose properties cannot be read is left out, and `error` (when given) says why.
std::vector<DeviceInfo> visible_devices(std::string* error = nullptr);

// Makes device `ordinal` current, creates its context and returns the line operators grep for:
// "Found device N with properties: name: ... major: 9 minor: 0 ...". Throws Error(kGpuUnusable)
// naming the device and the CUDA error when any of that fails.
std::string found_device_line(int ordinal);

// Throws Error(kGpuUnusable) unless a device is usable, then selects device 0 and logs it the way
// operators grep for it: "Found device 0 with properties: name: ... major: 9 minor: 0 ...".
void require_gpu_and_log(std::ostream& log);

}  // namespace mnist
