// The training loop of the TF sample, written once for every backend.
#pragma once

#include <atomic>
#include <cstdint>
#include <ostream>
#include <string>

#include "train/backend.h"
#include "train/config.h"

namespace mnist {

struct TrainResult {
  double final_accuracy = 0.0;
  std::int64_t train_steps = 0;
  double seconds = 0.0;
};

// Set by the SIGTERM handler; the loop checkpoints and stops at the next iteration.
extern std::atomic<bool> g_stop_requested;

// for i in first_iteration..max_steps-1: i % eval_every == 0 evaluates and prints
// "Accuracy at step i: X"; otherwise one training step on a batch of run.train.batch_size.
// Writes summaries under log_dir and a checkpoint to checkpoint_dir at the end. Throws
// Error(kDiverged) on a non-finite loss, Error(kTerminated) after a SIGTERM (checkpoint saved).
TrainResult run_training_loop(const RunConfig& run, Backend& backend, const MnistData& data,
                              std::int64_t first_iteration, std::ostream& out);

// The accuracy the way Python prints a float32: shortest round-trip digits ("0.9575", "1.0").
std::string format_accuracy(double accuracy);

}  // namespace mnist
