#include "train/loop.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "data/fileio.h"
#include "error.h"
#include "stop.h"
#include "train/epochs.h"

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

// Summaries as JSON lines, one file per split, like the sample's train/ and test/ writers. A
// resumed run appends to them: nothing written earlier is lost.
class SummaryWriter {
 public:
  SummaryWriter(const std::string& log_dir, const char* split) {
    if (log_dir.empty()) return;
    const std::string dir = (fs::path(log_dir) / split).string();
    ensure_writable_directory(dir, "--log_dir", ExitCode::kOutputFailed);
    file_ = AppendFile((fs::path(dir) / "scalars.jsonl").string(), ExitCode::kOutputFailed);
  }
  void write(const nlohmann::json& record) {
    if (file_.is_open()) file_.write(record.dump() + "\n");
  }

 private:
  AppendFile file_;
};

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

}  // namespace

TrainResult run_training_loop(const RunConfig& run, Backend& backend, const MnistData& data,
                              const ResumePoint& resume, std::ostream& out) {
  SummaryWriter train_log(run.log_dir, "train");
  SummaryWriter test_log(run.log_dir, "test");
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

  double accuracy = 0.0;
  bool evaluated_last = false;
  const auto start = Clock::now();
  for (std::int64_t i = resume.iteration; i < run.max_steps; ++i) {
    if (stop_requested()) {
      if (run.checkpoint_dir.empty())
        throw_stopped("at step " + std::to_string(i), "no --checkpoint_dir, nothing saved");
      checkpoint(i);
      throw_stopped("at step " + std::to_string(i), "checkpoint saved in " + run.checkpoint_dir);
    }
    if (schedule.due(i)) checkpoint(i);
    if (i % run.eval_every == 0) {
      if (backend.steps_taken() > 0) {
        check_finite(newest_loss(), i);
        train_log.write({{"step", i}, {"cross_entropy", loss}});
      }
      accuracy = double(backend.evaluate_test()) / data.test.count;
      out << "Accuracy at step " << i << ": " << format_accuracy(accuracy) << std::endl;
      check_written(out);
      test_log.write({{"step", i}, {"accuracy", accuracy}});
      evaluated_last = true;
      continue;
    }
    epochs.before_step();
    if (i % 100 == 99) {
      // The sample traced this step's ops; we time it on its own and record it.
      backend.synchronize();
      const auto t0 = Clock::now();
      backend.train_step();
      stepped = true;
      newest_loss();
      const double micros = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
      train_log.write(
          {{"step", i}, {"cross_entropy", loss}, {"run_metadata", {{"step_wall_us", micros}}}});
      out << "Adding run metadata for " << i << std::endl;
      check_written(out);
    } else {
      backend.train_step();
      stepped = true;
    }
    evaluated_last = false;
  }
  TrainResult result;
  result.train_steps = backend.steps_taken();
  if (result.train_steps > 0) check_finite(newest_loss(), run.max_steps);
  if (!evaluated_last) accuracy = double(backend.evaluate_test()) / data.test.count;
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  result.final_accuracy = accuracy;
  // A run resumed past its --max_steps keeps the checkpoint where it was (iterations label states).
  if (!run.checkpoint_dir.empty())
    checkpoint(std::max<std::int64_t>(run.max_steps, resume.iteration));
  return result;
}

}  // namespace mnist
