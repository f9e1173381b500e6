// Checkpoints: checkpoint_dir/model.ckpt (the newest) and model.ckpt.1 (the one before), each
// holding the run's identity (model, data, seed, batch), the next iteration, the last loss, and the
// parameters with their Adam state, followed by a SHA-256 of everything before it. A checkpoint is
// untrusted input: every field is type- and range-checked, a corrupt newest file is reported and
// the previous one used, and a checkpoint never moves backwards.
//
// File layout (little-endian): "MNISTCK2", u32 header length, the JSON header, params, adam_m,
// adam_v (float32 each, `parameters` of them), then the 32-byte SHA-256 of all the bytes before it.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "train/backend.h"
#include "train/config.h"

namespace mnist {

// What a checkpoint file holds.
struct Checkpoint {
  std::string model;  // model_name()
  int hidden_units = 0, batch_size = 0;
  std::uint64_t seed = 0;
  std::string dataset;
  bool fake_data = false;
  std::int64_t iteration = 0;  // the loop iteration to resume at
  float last_loss = 0.0f;      // the loss of the last training step (0 before any)
  TrainState state;
};

// The checkpoint of `run` at `iteration` with the backend's state.
Checkpoint make_checkpoint(const RunConfig& run, const TrainState& state, std::int64_t iteration,
                           float last_loss);

std::vector<std::uint8_t> encode_checkpoint(const Checkpoint& checkpoint);

// Parses and validates a checkpoint file's bytes: magic, checksum, every header field's type and
// range, sizes. Throws Error(kDataInvalid) "NAME: invalid checkpoint: WHY" on any fault, and
// Error(kBadArguments) "NAME: written by a newer version of mnist-train ..." for an intact file
// (magic and checksum right) whose format is above this binary's; nothing else, whatever the bytes.
Checkpoint decode_checkpoint(const std::vector<std::uint8_t>& bytes, const std::string& name);

// Throws Error(kBadArguments) naming the field when the checkpoint belongs to another run
// configuration (model, hidden units, batch, seed, dataset) or has another parameter count.
void check_compatible(const Checkpoint& checkpoint, const RunConfig& run, std::size_t parameters,
                      const std::string& name);

// Where a run starts: iteration 0, or where a checkpoint left off (with the loss it last logged).
struct ResumePoint {
  std::int64_t iteration = 0;
  float last_loss = 0.0f;
};

// Loads the newest valid checkpoint of run.checkpoint_dir into the backend and returns where to
// resume (iteration 0: no checkpoint_dir or no checkpoint there). A corrupt file is reported on
// `log` and the previous one tried; when files exist but none is valid, throws Error(kDataInvalid)
// naming them. A newer version's checkpoint under either name is Error(kBadArguments), never
// skipped for an older one.
ResumePoint load_checkpoint_if_present(const RunConfig& run, Backend& backend, std::ostream& log);

// Writes a checkpoint of the backend at `next_iteration` (the newest becomes model.ckpt.1), unless
// the newest valid checkpoint is already at or beyond it; a newer version's checkpoint is never
// replaced (Error(kBadArguments)). Stop requests are held off for the
// write: it completes or leaves the previous files untouched.
void save_checkpoint(const RunConfig& run, Backend& backend, std::int64_t next_iteration,
                     float last_loss);

}  // namespace mnist
