#pragma once

#include <memory>
#include <ostream>

#include "backend.h"
#include "options.h"

namespace mnist {

// auto -> cuda when a device is visible, else cpu (with a warning on `log`). cuda with no usable
// device throws Error(kGpuUnusable). Logs the device when a GPU backend is chosen.
BackendKind resolve_backend(BackendKind requested, std::ostream& log);

std::unique_ptr<Backend> make_backend(BackendKind kind, const TrainConfig& config,
                                      const MnistData& data, std::vector<float> initial_params);

}  // namespace mnist
