// The training loop of the TF sample, written once for every backend.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>

#include "train/backend.h"
#include "train/checkpoint.h"
#include "train/config.h"

namespace mnist {

struct TrainResult {
  double final_accuracy = 0.0;   // test accuracy after the last step
  double best_accuracy = 0.0;    // the best test accuracy of this process's evaluations
  std::int64_t best_step = 0;    // the iteration it was measured at
  double final_loss = 0.0;       // cross-entropy of the last training batch (NaN: no step yet)
  std::int64_t train_steps = 0;  // training steps of the model (a resumed run counts earlier ones)
  std::int64_t steps_this_run = 0;  // training steps this process took
  double seconds = 0.0;             // wall time of the loop (training, evaluation, logging)
  double images_per_second = 0.0;   // training images of this process per second of the loop
};

// for i in resume.iteration..max_steps-1: i % eval_every == 0 evaluates and prints
// "Accuracy at step i: X"; otherwise one training step on a batch of run.train.batch_size.
// Appends summaries under log_dir; with a checkpoint_dir, saves checkpoints periodically
// (checkpoint_every_*), on a stop request and at the end. Throws Error(kDiverged) on a non-finite
// loss, Error(kTerminated/kInterrupted) after SIGTERM/SIGINT (checkpoint saved when configured),
// Error(kOutputFailed) when the log or a summary cannot be written. Sends a heartbeat
// (watchdog.h) at every iteration: "training" or "evaluation", and "checkpoint" for the saves.
//
// Test-only stand-in for a hung GPU: with the environment variable MNIST_TEST_STALL_AT_STEP=N
// (read once, when the loop starts), iteration N blocks forever, ignoring stop requests, as a
// CUDA call that never returns does; only the stall watchdog (or SIGKILL) ends the process.
TrainResult run_training_loop(const RunConfig& run, Backend& backend, const MnistData& data,
                              const ResumePoint& resume, std::ostream& out);

// The accuracy the way Python prints a float32: shortest round-trip digits ("0.9575", "1.0").
std::string format_accuracy(double accuracy);

}  // namespace mnist
