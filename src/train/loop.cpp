#include "train/loop.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "error.h"
#include "progress.h"
#include "stop.h"
#include "train/epochs.h"
#include "train/summaries.h"
#include "watchdog.h"

namespace mnist {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::string format_accuracy(double accuracy) {
  const float value = static_cast<float>(accuracy);
  char buf[32];
  for (int digits = 1; digits <= 9; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, double(value));
    if (std::strtof(buf, nullptr) == value) break;
  }
  std::string s = buf;
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

namespace {

void check_finite(float loss, std::int64_t iteration) {
  if (!std::isfinite(loss)) {
    throw Error(ExitCode::kDiverged,
                "training diverged: loss is " + std::string(std::isnan(loss) ? "NaN" : "Inf") +
                    " at step " + std::to_string(iteration) + " (try a smaller --learning_rate)");
  }
}

// The log goes to stdout: a full disk or a closed pipe must not pass unnoticed.
void check_written(const std::ostream& out) {
  if (!out) {
    throw Error(ExitCode::kOutputFailed,
                "cannot write the training log (stdout): full disk or closed pipe?");
  }
}

// When the next periodic checkpoint is due: every N iterations and every T seconds.
class CheckpointSchedule {
 public:
  CheckpointSchedule(const RunConfig& run, std::int64_t first_iteration)
      : run_(run), last_iteration_(first_iteration), last_time_(Clock::now()) {}
  bool due(std::int64_t iteration) const {
    if (run_.checkpoint_dir.empty() || iteration == last_iteration_) return false;
    if (run_.checkpoint_every_steps > 0 &&
        iteration - last_iteration_ >= run_.checkpoint_every_steps)
      return true;
    return run_.checkpoint_every_seconds > 0 &&
           std::chrono::duration<double>(Clock::now() - last_time_).count() >=
               run_.checkpoint_every_seconds;
  }
  void saved(std::int64_t iteration) {
    last_iteration_ = iteration;
    last_time_ = Clock::now();
  }

 private:
  const RunConfig& run_;
  std::int64_t last_iteration_;
  Clock::time_point last_time_;
};

// MNIST_TEST_STALL_AT_STEP (loop.h: test-only), or -1.
std::int64_t test_stall_step() {
  const char* text = std::getenv("MNIST_TEST_STALL_AT_STEP");
  if (!text || !*text) return -1;
  char* end = nullptr;
  const long long step = std::strtoll(text, &end, 10);
  return *end == '\0' && step >= 0 ? step : -1;
}

// A hung GPU call, for tests: no heartbeat, no stop request, no return.
[[noreturn]] void stall_forever() {
  for (;;) ::pause();
}

}  // namespace

namespace {

// The live status line (a terminal only): where the run is, how fast, how long still to go.
void show_progress(std::int64_t iteration, const RunConfig& run, std::int64_t first_iteration,
                   std::int64_t steps, double seconds, float loss) {
  if (!status_line_enabled() || seconds <= 0) return;
  const double per_iteration =
      seconds / double(std::max<std::int64_t>(1, iteration - first_iteration + 1));
  char line[160];
  std::snprintf(line, sizeof line, "step %lld/%d  %.0f images/s  ETA %.1f s  loss %.4g",
                static_cast<long long>(iteration), run.max_steps,
                double(steps) * run.train.batch_size / seconds,
                per_iteration * double(run.max_steps - iteration - 1), double(loss));
  show_status(line);
}

}  // namespace

TrainResult run_training_loop(const RunConfig& run, Backend& backend, const MnistData& data,
                              const ResumePoint& resume, std::ostream& out) {
  RunSummaries summaries(run, data, backend, resume.iteration);
  EpochFeeder epochs(backend, run.train.seed, run.train.batch_size, data.train.count);
  CheckpointSchedule schedule(run, resume.iteration);

  // The loss of the newest training step: the backend's once this process has taken one, else
  // the checkpoint's (a backend restored from a checkpoint has no loss of its own yet).
  float loss = resume.last_loss;
  bool stepped = false;
  auto newest_loss = [&] {
    if (stepped) loss = backend.last_loss();
    return loss;
  };
  auto checkpoint = [&](std::int64_t next_iteration) {
    save_checkpoint(run, backend, next_iteration, newest_loss());
    schedule.saved(next_iteration);
  };
  // Every line on stdout: the status line (if any) is cleared first, and a failed write is
  // reported (a full disk or a closed pipe).
  auto print = [&](const std::string& line) {
    clear_status();
    out << line << std::endl;
    check_written(out);
  };

  TrainResult result;
  bool have_best = false;
  auto note_best = [&](double value, std::int64_t iteration) {
    if (have_best && value <= result.best_accuracy) return;
    result.best_accuracy = value;
    result.best_step = iteration;
    have_best = true;
  };
  // A summaries failure (the log volume full or gone) ends the run with exit 6, but the training
  // is saved first when it can be: the checkpoint volume may well be another one.
  auto summarise = [&](std::int64_t next_iteration, auto&& write) {
    try {
      write();
    } catch (const Error& e) {
      if (e.code() == ExitCode::kOutputFailed && !run.checkpoint_dir.empty()) {
        try {
          checkpoint(next_iteration);
        } catch (const std::exception&) {  // the original error is the one to report
        }
      }
      throw;
    }
  };
  double accuracy = 0.0;
  bool evaluated_last = false;
  const auto start = Clock::now();
  auto interval_start = start;  // images/s between evaluations (summaries)
  std::int64_t interval_steps = 0;
  const std::int64_t stall_at = test_stall_step();
  for (std::int64_t i = resume.iteration; i < run.max_steps; ++i) {
    heartbeat(i % run.eval_every == 0 ? "evaluation" : "training");
    if (i == stall_at) stall_forever();
    if (stop_requested()) {
      if (run.checkpoint_dir.empty())
        throw_stopped("at step " + std::to_string(i), "no --checkpoint_dir, nothing saved");
      checkpoint(i);  // the summaries are finished by their destructor, briefly when stopping
      throw_stopped("at step " + std::to_string(i), "checkpoint saved in " + run.checkpoint_dir);
    }
    if (schedule.due(i)) checkpoint(i);
    if (i % run.eval_every == 0) {
      if (backend.steps_taken() > 0) check_finite(newest_loss(), i);
      const Evaluation test = backend.evaluate(EvalSplit::kTest, summaries.enabled());
      accuracy = double(test.correct) / data.test.count;
      note_best(accuracy, i);
      print("Accuracy at step " + std::to_string(i) + ": " + format_accuracy(accuracy));
      const auto now = Clock::now();
      if (summaries.enabled()) {
        const double seconds = std::chrono::duration<double>(now - interval_start).count();
        const double rate =
            interval_steps > 0 && seconds > 0 ? interval_steps * run.train.batch_size / seconds : 0;
        std::optional<Evaluation> validation;
        if (summaries.validation_due(i)) {
          heartbeat("evaluation");
          validation = backend.evaluate(EvalSplit::kValidation, true);
        }
        summarise(i, [&] { summaries.evaluated(i, test, validation, rate); });
      }
      show_progress(i, run, resume.iteration, result.steps_this_run,
                    std::chrono::duration<double>(now - start).count(), loss);
      interval_start = Clock::now();
      interval_steps = 0;
      evaluated_last = true;
      continue;
    }
    epochs.before_step();
    summarise(i, [&] { summaries.before_step(i); });
    if (i % 100 == 99) {
      // The sample traced this step's ops: with --log_dir it is run op by op, timed, and written
      // as a Chrome trace (log_dir/traces).
      if (summaries.enabled())
        backend.traced_train_step();
      else
        backend.train_step();
      stepped = true;
      print("Adding run metadata for " + std::to_string(i));
    } else {
      backend.train_step();
      stepped = true;
    }
    result.steps_this_run += 1;
    interval_steps += 1;
    evaluated_last = false;
  }
  result.train_steps = backend.steps_taken();
  result.final_loss = result.train_steps > 0 ? newest_loss() : std::nanf("");
  if (result.train_steps > 0) check_finite(result.final_loss, run.max_steps);
  if (!evaluated_last) {
    heartbeat("evaluation");
    accuracy = double(backend.evaluate_test()) / data.test.count;
    note_best(accuracy, std::max<std::int64_t>(run.max_steps, resume.iteration));
  }
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  result.final_accuracy = accuracy;
  if (result.seconds > 0)
    result.images_per_second =
        double(result.steps_this_run) * run.train.batch_size / result.seconds;
  // The final checkpoint before the summaries' last writes, so a failing log volume cannot cost
  // the training. A run resumed past its --max_steps keeps the checkpoint where it was
  // (iterations label states).
  if (!run.checkpoint_dir.empty())
    checkpoint(std::max<std::int64_t>(run.max_steps, resume.iteration));
  summaries.finish();
  clear_status();
  return result;
}

}  // namespace mnist
