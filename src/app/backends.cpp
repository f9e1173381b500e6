#include "app/backends.h"

#include <cstdlib>
#include <stdexcept>

#include "error.h"
#include "gpu/cublas_backend.h"
#include "gpu/cuda_backend.h"
#include "gpu/device.h"
#include "gpu/libraries.h"
#include "train/cpu_backend.h"

namespace mnist {

void load_baseline_libraries() { lib::cublas_lt(); }

BackendKind resolve_backend(BackendKind requested, std::ostream& log) {
  if (requested == BackendKind::kCpu) return requested;
  // A missing library is this installation's fault, whatever the node: said before the GPU is.
  if (requested == BackendKind::kCublas) load_baseline_libraries();
  if (requested == BackendKind::kAuto) {
    const GpuProbe probe = probe_gpus();
    if (probe.device_count == 0) {
      // The NVIDIA device plugin lists the GPUs it gave a container in NVIDIA_VISIBLE_DEVICES
      // (their UUIDs or indices, or the folder of a volume-mounted list): then a missing device is
      // a broken node, never a reason to train on the CPU and pass. "all" is no such list: NVIDIA's
      // CUDA images set it in every container, GPU or not.
      const char* assigned = std::getenv("NVIDIA_VISIBLE_DEVICES");
      const std::string a = assigned ? assigned : "";
      if (!a.empty() && a != "void" && a != "none" && a != "all") {
        throw Error(ExitCode::kGpuUnusable,
                    "this container was assigned a GPU (NVIDIA_VISIBLE_DEVICES=" + a +
                        ") but CUDA cannot use it: " + describe(probe));
      }
      log << "warning: no CUDA GPU found, training on the CPU (" << describe(probe)
          << "); pass --backend cuda to fail instead" << std::endl;
      return BackendKind::kCpu;
    }
    requested = BackendKind::kCuda;
  }
  require_gpu_and_log(log);
  return requested;
}

bool gpu_visible() { return probe_gpus().device_count > 0; }

std::unique_ptr<Backend> make_backend(BackendKind kind, const TrainConfig& config,
                                      const MnistData& data) {
  return make_backend(
      kind, config, data,
      initial_parameters(make_layout(config.model, config.hidden_units), config.seed));
}

std::unique_ptr<Backend> make_backend(BackendKind kind, const TrainConfig& config,
                                      const MnistData& data, std::vector<float> initial_params) {
  switch (kind) {
    case BackendKind::kCuda:
      return std::make_unique<CudaBackend>(config, data, std::move(initial_params));
    case BackendKind::kCublas:
      return std::make_unique<CublasBackend>(config, data, std::move(initial_params));
    case BackendKind::kCpu:
      return std::make_unique<CpuBackend>(config, data, std::move(initial_params));
    case BackendKind::kAuto:
      break;
  }
  throw std::logic_error("make_backend: resolve 'auto' first (resolve_backend)");
}

}  // namespace mnist
