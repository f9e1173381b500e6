// Finding the GPU and saying clearly why when there is none.
#pragma once

#include <ostream>
#include <string>

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

// Throws Error(kGpuUnusable) unless a device is usable, then selects device 0 and logs it the way
// operators grep for it: "Found device 0 with properties: name: ... major: 9 minor: 0 ...".
void require_gpu_and_log(std::ostream& log);

}  // namespace mnist
