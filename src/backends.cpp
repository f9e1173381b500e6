#include "backends.h"

#include "cpu_backend.h"
#include "cublas_backend.h"
#include "cuda_backend.h"
#include "gpu_device.h"

namespace mnist {

BackendKind resolve_backend(BackendKind requested, std::ostream& log) {
  if (requested == BackendKind::kCpu) return requested;
  if (requested == BackendKind::kAuto) {
    const GpuProbe probe = probe_gpus();
    if (probe.device_count == 0) {
      log << "warning: no CUDA GPU found, training on the CPU (" << describe(probe)
          << "); pass --backend cuda to fail instead" << std::endl;
      return BackendKind::kCpu;
    }
    requested = BackendKind::kCuda;
  }
  require_gpu_and_log(log);
  return requested;
}

std::unique_ptr<Backend> make_backend(BackendKind kind, const TrainConfig& config,
                                      const MnistData& data, std::vector<float> initial_params) {
  switch (kind) {
    case BackendKind::kCuda:
      return std::make_unique<CudaBackend>(config, data, std::move(initial_params));
    default:
      return std::make_unique<CpuBackend>(config, data, std::move(initial_params));
  }
}

}  // namespace mnist
