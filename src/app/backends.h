// Choosing and building the backend a run trains with.
#pragma once

#include <memory>
#include <ostream>

#include "train/backend.h"
#include "train/config.h"

namespace mnist {

// auto -> cuda when a device is visible, else cpu (with a warning on `log`): exit 4 instead when
// NVIDIA_VISIBLE_DEVICES lists the GPUs this container was given (a value other than "all", "void"
// or "none"). cuda or cublas with no usable device throws Error(kGpuUnusable); cublas loads its
// libraries first (load_baseline_libraries). Logs the device when a GPU backend is chosen.
BackendKind resolve_backend(BackendKind requested, std::ostream& log);

// Loads cuBLASLt (src/gpu/libraries.h), which the cublas backend and the benchmark's comparison
// need: Error(kBadArguments, ..., "library_missing") when it cannot be loaded.
void load_baseline_libraries();

// Whether CUDA sees at least one device.
bool gpu_visible();

// A backend of `kind` (not auto) with the TF sample's initial parameters for config.seed.
std::unique_ptr<Backend> make_backend(BackendKind kind, const TrainConfig& config,
                                      const MnistData& data);
// The same from given parameters (the GPU tests start backends from other initialisations).
std::unique_ptr<Backend> make_backend(BackendKind kind, const TrainConfig& config,
                                      const MnistData& data, std::vector<float> initial_params);

}  // namespace mnist
