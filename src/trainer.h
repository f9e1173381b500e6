// The training loop of the TF sample, written once for every backend.
#pragma once

#include <atomic>
#include <ostream>

#include "backend.h"
#include "options.h"

namespace mnist {

struct TrainResult {
  double final_accuracy = 0.0;
  std::int64_t train_steps = 0;
  double seconds = 0.0;
};

// Set by the SIGTERM handler; the loop checkpoints and stops at the next iteration.
extern std::atomic<bool> g_stop_requested;

// for i in 0..max_steps-1: i % eval_every == 0 evaluates and prints "Accuracy at step i: X";
// otherwise one training step. Writes summaries under log_dir and checkpoints to checkpoint_dir.
// Throws Error(kDiverged) on a non-finite loss, Error(kTerminated) after a SIGTERM.
TrainResult run_training_loop(const Options& options, Backend& backend, const MnistData& data,
                              std::int64_t first_iteration, std::ostream& out);

// The accuracy the way Python prints a float32: shortest round-trip digits ("0.9575", "1.0").
std::string format_accuracy(double accuracy);

// Checkpoint file: checkpoint_dir/model.ckpt. Returns the iteration to resume at (0: fresh start).
std::int64_t load_checkpoint_if_present(const Options& options, Backend& backend,
                                        std::ostream& out);
void save_checkpoint(const Options& options, Backend& backend, std::int64_t next_iteration);

}  // namespace mnist
