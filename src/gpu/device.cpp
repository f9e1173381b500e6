#include "gpu/device.h"

#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>

#include "error.h"

namespace mnist {
namespace {

std::string cuda_error_text(cudaError_t rc) {
  return std::string(cudaGetErrorName(rc)) + ": " + cudaGetErrorString(rc);
}

// The "Found device" line's bus id (nvidia-smi writes the same with 8 domain digits).
std::string pci_bus_id_of(const cudaDeviceProp& prop) {
  char id[32];
  std::snprintf(id, sizeof id, "%04x:%02x:%02x.0", static_cast<unsigned>(prop.pciDomainID),
                static_cast<unsigned>(prop.pciBusID), static_cast<unsigned>(prop.pciDeviceID));
  return id;
}

// nvidia-smi's form: "GPU-" then the 16 bytes as 8-4-4-4-12 hex digits.
std::string uuid_of(const cudaDeviceProp& prop) {
  std::string text = "GPU-";
  static const char kHex[] = "0123456789abcdef";
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) text += '-';
    const auto byte = static_cast<unsigned char>(prop.uuid.bytes[i]);
    text += kHex[byte >> 4];
    text += kHex[byte & 15];
  }
  return text;
}

DeviceInfo info_from(int ordinal, const cudaDeviceProp& prop) {
  DeviceInfo d;
  d.ordinal = ordinal;
  d.name = prop.name;
  d.major = prop.major;
  d.minor = prop.minor;
  d.multiprocessors = prop.multiProcessorCount;
  d.total_memory_bytes = prop.totalGlobalMem;
  d.pci_bus_id = pci_bus_id_of(prop);
  d.uuid = uuid_of(prop);
  return d;
}

}  // namespace

std::string cuda_version_string(int v) {
  return v == 0 ? "none" : std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
}

GpuProbe probe_gpus() {
  GpuProbe p;
  cudaDriverGetVersion(&p.driver_version);
  cudaRuntimeGetVersion(&p.runtime_version);
  const cudaError_t rc = cudaGetDeviceCount(&p.device_count);
  if (rc != cudaSuccess) {
    p.device_count = 0;
    p.error = cuda_error_text(rc);
  }
  return p;
}

std::string describe(const GpuProbe& p) {
  const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
  std::string s =
      "CUDA devices visible: " + std::to_string(p.device_count) + "; driver supports CUDA " +
      cuda_version_string(p.driver_version) + "; runtime is CUDA " +
      cuda_version_string(p.runtime_version) +
      "; CUDA_VISIBLE_DEVICES=" + (visible ? std::string("\"") + visible + "\"" : "(unset)");
  if (!p.error.empty()) s += "; cudaGetDeviceCount: " + p.error;
  return s;
}

std::string gpu_label(const DeviceInfo& d) {
  return "GPU " + std::to_string(d.ordinal) + " (" + d.name + ", PCI " + d.pci_bus_id + ", " +
         d.uuid + ")";
}

DeviceInfo device_info(int ordinal) {
  cudaDeviceProp prop{};
  const cudaError_t rc = cudaGetDeviceProperties(&prop, ordinal);
  if (rc != cudaSuccess) {
    throw Error(ExitCode::kGpuUnusable, "cannot read the properties of CUDA device " +
                                            std::to_string(ordinal) + ": " + cuda_error_text(rc));
  }
  return info_from(ordinal, prop);
}

std::vector<DeviceInfo> visible_devices(std::string* error) {
  std::vector<DeviceInfo> devices;
  const GpuProbe p = probe_gpus();
  if (error) error->clear();
  for (int i = 0; i < p.device_count; ++i) {
    cudaDeviceProp prop{};
    const cudaError_t rc = cudaGetDeviceProperties(&prop, i);
    if (rc == cudaSuccess) {
      devices.push_back(info_from(i, prop));
    } else if (error) {
      *error += (error->empty() ? "" : "; ") + std::string("device ") + std::to_string(i) + ": " +
                cuda_error_text(rc);
    }
  }
  return devices;
}

std::string found_device_line(int ordinal) {
  cudaDeviceProp prop{};
  cudaError_t rc = cudaGetDeviceProperties(&prop, ordinal);
  if (rc == cudaSuccess) rc = cudaSetDevice(ordinal);
  if (rc == cudaSuccess)
    rc = cudaFree(nullptr);  // creates the context now, so failures surface here
  size_t free_bytes = 0, total_bytes = 0;
  if (rc == cudaSuccess) rc = cudaMemGetInfo(&free_bytes, &total_bytes);
  if (rc != cudaSuccess) {
    const std::string who = prop.name[0] ? gpu_label(info_from(ordinal, prop))
                                         : "CUDA device " + std::to_string(ordinal);
    throw Error(ExitCode::kGpuUnusable, who + " is not usable: " + cuda_error_text(rc));
  }
  char line[512];
  std::snprintf(line, sizeof line,
                "Found device %d with properties: name: %s major: %d minor: %d "
                "multiProcessorCount: %d pciBusID: %s totalMemory: %.2fGiB freeMemory: %.2fGiB",
                ordinal, prop.name, prop.major, prop.minor, prop.multiProcessorCount,
                pci_bus_id_of(prop).c_str(), double(total_bytes) / (1 << 30),
                double(free_bytes) / (1 << 30));
  return line;
}

void require_gpu_and_log(std::ostream& log) {
  const GpuProbe p = probe_gpus();
  if (p.device_count == 0) {
    std::string hint;
    std::string reason = "no_device";
    if (p.driver_version == 0)
      hint =
          " (no NVIDIA driver found: is this a GPU node, and is the device plugin exposing the "
          "GPU?)";
    else if (p.driver_version < p.runtime_version) {
      hint = " (the driver is older than the CUDA runtime: update the driver)";
      reason = "driver_too_old";
    }
    throw Error(ExitCode::kGpuUnusable, "no usable CUDA GPU: " + describe(p) + hint, reason);
  }
  std::string line;
  try {
    line = found_device_line(0);
  } catch (const Error& e) {
    throw Error(ExitCode::kGpuUnusable, std::string(e.what()) + "; " + describe(p));
  }
  log << line << "\n"
      << "CUDA driver version " << cuda_version_string(p.driver_version) << ", runtime version "
      << cuda_version_string(p.runtime_version) << ", " << p.device_count
      << " device(s) visible, using device 0" << std::endl;
}

}  // namespace mnist
