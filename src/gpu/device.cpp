#include "gpu/device.h"

#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>

#include "error.h"

namespace mnist {
namespace {

std::string version_string(int v) {
  return v == 0 ? "none" : std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
}

}  // namespace

GpuProbe probe_gpus() {
  GpuProbe p;
  cudaDriverGetVersion(&p.driver_version);
  cudaRuntimeGetVersion(&p.runtime_version);
  const cudaError_t rc = cudaGetDeviceCount(&p.device_count);
  if (rc != cudaSuccess) {
    p.device_count = 0;
    p.error = std::string(cudaGetErrorName(rc)) + ": " + cudaGetErrorString(rc);
  }
  return p;
}

std::string describe(const GpuProbe& p) {
  const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
  std::string s =
      "CUDA devices visible: " + std::to_string(p.device_count) + "; driver supports CUDA " +
      version_string(p.driver_version) + "; runtime is CUDA " + version_string(p.runtime_version) +
      "; CUDA_VISIBLE_DEVICES=" + (visible ? std::string("\"") + visible + "\"" : "(unset)");
  if (!p.error.empty()) s += "; cudaGetDeviceCount: " + p.error;
  return s;
}

void require_gpu_and_log(std::ostream& log) {
  const GpuProbe p = probe_gpus();
  if (p.device_count == 0) {
    std::string hint;
    if (p.driver_version == 0)
      hint =
          " (no NVIDIA driver found: is this a GPU node, and is the device plugin exposing the "
          "GPU?)";
    else if (p.driver_version < p.runtime_version)
      hint = " (the driver is older than the CUDA runtime: update the driver)";
    throw Error(ExitCode::kGpuUnusable, "no usable CUDA GPU: " + describe(p) + hint);
  }
  cudaDeviceProp prop{};
  cudaError_t rc = cudaGetDeviceProperties(&prop, 0);
  if (rc == cudaSuccess) rc = cudaSetDevice(0);
  if (rc == cudaSuccess)
    rc = cudaFree(nullptr);  // creates the context now, so failures surface here
  size_t free_bytes = 0, total_bytes = 0;
  if (rc == cudaSuccess) rc = cudaMemGetInfo(&free_bytes, &total_bytes);
  if (rc != cudaSuccess) {
    throw Error(ExitCode::kGpuUnusable, std::string("CUDA device 0 is not usable: ") +
                                            cudaGetErrorName(rc) + ": " + cudaGetErrorString(rc) +
                                            "; " + describe(p));
  }
  char line[512];
  std::snprintf(
      line, sizeof line,
      "Found device 0 with properties: name: %s major: %d minor: %d multiProcessorCount: %d "
      "pciBusID: %04x:%02x:%02x.0 totalMemory: %.2fGiB freeMemory: %.2fGiB",
      prop.name, prop.major, prop.minor, prop.multiProcessorCount, prop.pciDomainID, prop.pciBusID,
      prop.pciDeviceID, double(total_bytes) / (1 << 30), double(free_bytes) / (1 << 30));
  log << line << "\n"
      << "CUDA driver version " << version_string(p.driver_version) << ", runtime version "
      << version_string(p.runtime_version) << ", " << p.device_count
      << " device(s) visible, using device 0" << std::endl;
}

}  // namespace mnist
