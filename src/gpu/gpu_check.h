// The GPUs a run trains on: which ones --gpus names, and a check of each before training, so that
// a Job given several GPUs proves every one of them (and names the one that is not right).
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "gpu/device.h"
#include "train/config.h"

namespace mnist {

// The CUDA ordinals `selection` names among `visible` devices: all of them, the first N, or the
// list. Throws Error(kGpuUnusable) naming what is missing when it asks for a GPU CUDA does not see
// (a node short of GPUs is a broken node, as with none).
std::vector<int> resolve_gpus(const GpuSelection& selection, int visible);

// Checks each GPU in turn: its properties, a context and its memory, and one product of our GEMM
// kernel on fixed data, compared with a host computation (within fp32 rounding) and, between GPUs
// of the same model, bit for bit. Logs one "Found device N with properties: ..." line per GPU.
// Throws Error(kGpuUnusable) naming the first GPU that fails (ordinal, PCI bus id, UUID) and why.
// Returns the GPUs' descriptions, in the order given.
std::vector<DeviceInfo> check_gpus(const std::vector<int>& ordinals, std::ostream& log);

}  // namespace mnist
