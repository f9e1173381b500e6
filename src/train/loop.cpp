#include "train/loop.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "error.h"
#include "train/checkpoint.h"
#include "train/epochs.h"

namespace mnist {

std::atomic<bool> g_stop_requested{false};

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

// Summaries as JSON lines, one file per split, like the sample's train/ and test/ writers.
class SummaryWriter {
 public:
  SummaryWriter(const std::string& log_dir, const char* split) {
    if (log_dir.empty()) return;
    const fs::path dir = fs::path(log_dir) / split;
    std::error_code ec;
    fs::create_directories(dir, ec);
    file_.open(dir / "scalars.jsonl", std::ios::trunc);
    if (!file_) {
      throw Error(ExitCode::kBadArguments,
                  (dir / "scalars.jsonl").string() + ": cannot write summaries (--log_dir)");
    }
  }
  void write(const nlohmann::json& record) {
    if (file_) file_ << record.dump() << '\n' << std::flush;
  }

 private:
  std::ofstream file_;
};

void check_finite(float loss, std::int64_t iteration) {
  if (!std::isfinite(loss)) {
    throw Error(ExitCode::kDiverged,
                "training diverged: loss is " + std::string(std::isnan(loss) ? "NaN" : "Inf") +
                    " at step " + std::to_string(iteration) + " (try a smaller --learning_rate)");
  }
}

}  // namespace

TrainResult run_training_loop(const RunConfig& run, Backend& backend, const MnistData& data,
                              std::int64_t first_iteration, std::ostream& out) {
  SummaryWriter train_log(run.log_dir, "train");
  SummaryWriter test_log(run.log_dir, "test");
  EpochFeeder epochs(backend, run.train.seed, run.train.batch_size, data.train.count);

  double accuracy = 0.0;
  bool evaluated_last = false;
  const auto start = Clock::now();
  for (std::int64_t i = first_iteration; i < run.max_steps; ++i) {
    if (g_stop_requested.load()) {
      if (run.checkpoint_dir.empty()) {
        throw Error(ExitCode::kTerminated, "stopped by SIGTERM at step " + std::to_string(i) +
                                               " (no --checkpoint_dir, nothing saved)");
      }
      save_checkpoint(run, backend, i);
      throw Error(ExitCode::kTerminated, "stopped by SIGTERM at step " + std::to_string(i) +
                                             "; checkpoint saved in " + run.checkpoint_dir);
    }
    if (i % run.eval_every == 0) {
      const std::int64_t steps = backend.steps_taken();
      if (steps > 0) {
        const float loss = backend.last_loss();
        check_finite(loss, i);
        train_log.write({{"step", i}, {"cross_entropy", loss}});
      }
      accuracy = double(backend.evaluate_test()) / data.test.count;
      out << "Accuracy at step " << i << ": " << format_accuracy(accuracy) << std::endl;
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
      const float loss = backend.last_loss();
      const double micros = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
      train_log.write(
          {{"step", i}, {"cross_entropy", loss}, {"run_metadata", {{"step_wall_us", micros}}}});
      out << "Adding run metadata for " << i << std::endl;
    } else {
      backend.train_step();
    }
    evaluated_last = false;
  }
  TrainResult result;
  result.train_steps = backend.steps_taken();
  if (result.train_steps > 0) check_finite(backend.last_loss(), run.max_steps);
  if (!evaluated_last) accuracy = double(backend.evaluate_test()) / data.test.count;
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  result.final_accuracy = accuracy;
  if (!run.checkpoint_dir.empty()) save_checkpoint(run, backend, run.max_steps);
  return result;
}

}  // namespace mnist
