// Checkpoints: checkpoint_dir/model.ckpt holds the run's identity (model, data, seed, batch), the
// next iteration, and the parameters with their Adam state, written atomically.
#pragma once

#include <cstdint>
#include <ostream>

#include "train/backend.h"
#include "train/config.h"

namespace mnist {

// Returns the iteration to resume at (0: no checkpoint_dir or no checkpoint there). Throws
// Error(kBadArguments) when the checkpoint belongs to another run configuration and
// Error(kDataUnavailable) when it is malformed.
std::int64_t load_checkpoint_if_present(const RunConfig& run, Backend& backend, std::ostream& out);

void save_checkpoint(const RunConfig& run, Backend& backend, std::int64_t next_iteration);

}  // namespace mnist
