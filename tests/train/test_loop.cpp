#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "app/backends.h"
#include "app/cli.h"
#include "data/fileio.h"
#include "error.h"
#include "stop.h"
#include "train/checkpoint.h"
#include "train/loop.h"

namespace mnist {
namespace {

namespace fs = std::filesystem;

struct RunOutput {
  std::string log;
  TrainResult result;
  std::vector<float> params;
};

Options fake_options(int max_steps) {
  Options o;
  o.max_steps = max_steps;
  o.fake_data = true;
  o.hidden_units = 32;
  o.log_dir = "";
  return o;
}

const MnistData& fake() {
  static const MnistData data = make_fake_data(1);
  return data;
}

// Runs the loop the way main() does: the flags' run, a fresh CPU backend, resume if possible.
RunOutput run(const Options& o, const std::function<void(RunConfig&)>& adjust = {}) {
  RunConfig config = run_config(o);
  if (adjust) adjust(config);
  auto backend = make_backend(BackendKind::kCpu, config.train, fake());
  std::ostringstream out;
  const ResumePoint first = load_checkpoint_if_present(config, *backend, out);
  RunOutput r;
  r.result = run_training_loop(config, *backend, fake(), first, out);
  r.log = out.str();
  r.params = backend->state().params;
  return r;
}

int count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (std::size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1))
    ++n;
  return n;
}

TEST(FormatAccuracy, PrintsLikePythonFloat32) {
  EXPECT_EQ(format_accuracy(0.9575), "0.9575");
  EXPECT_EQ(format_accuracy(1.0), "1.0");
  EXPECT_EQ(format_accuracy(0.1), "0.1");
  EXPECT_EQ(format_accuracy(0.0), "0.0");
  EXPECT_EQ(format_accuracy(0.0982), "0.0982");
}

TEST(TrainingLoop, FollowsTheSampleSchedule) {
  const RunOutput r = run(fake_options(120));
  EXPECT_EQ(count(r.log, "Accuracy at step "), 12);
  EXPECT_NE(r.log.find("Accuracy at step 0: "), std::string::npos);
  EXPECT_NE(r.log.find("Accuracy at step 110: "), std::string::npos);
  EXPECT_EQ(r.log.find("Accuracy at step 120"), std::string::npos);
  EXPECT_EQ(count(r.log, "Adding run metadata for "), 1);
  EXPECT_NE(r.log.find("Adding run metadata for 99\n"), std::string::npos);
  EXPECT_EQ(r.result.train_steps, 120 - 12);
  const std::regex line("Accuracy at step [0-9]+: [01]\\.[0-9]+\n");
  EXPECT_EQ(
      std::distance(std::sregex_iterator(r.log.begin(), r.log.end(), line), std::sregex_iterator()),
      12);
  EXPECT_GT(r.result.final_accuracy, 0.5);
}

TEST(TrainingLoop, WritesTrainAndTestSummaries) {
  Options o = fake_options(30);
  const fs::path dir = fs::temp_directory_path() / ("mnist_logs_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  o.log_dir = dir.string();
  run(o);
  std::ifstream test(dir / "test" / "scalars.jsonl"), train(dir / "train" / "scalars.jsonl");
  std::string line;
  int lines = 0;
  while (std::getline(test, line)) {
    EXPECT_NE(line.find("\"accuracy\""), std::string::npos);
    ++lines;
  }
  EXPECT_EQ(lines, 3);
  ASSERT_TRUE(std::getline(train, line));
  EXPECT_NE(line.find("\"cross_entropy\""), std::string::npos);
  fs::remove_all(dir);
}

// The run fails with `code` and a message containing `needle`.
void expect_run_error(const Options& o, ExitCode code, const std::string& needle) {
  try {
    run(o);
    ADD_FAILURE() << "expected exit code " << static_cast<int>(code);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(TrainingLoop, DivergenceIsExitCode5) {
  Options o = fake_options(40);
  o.learning_rate = 1e30f;
  expect_run_error(o, ExitCode::kDiverged, "training diverged");
}

TEST(TrainingLoop, ResumingFromACheckpointGivesTheSameResult) {
  const fs::path dir = fs::temp_directory_path() / ("mnist_ckpt_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  const RunOutput straight = run(fake_options(60));
  Options first_half = fake_options(25);
  first_half.checkpoint_dir = dir.string();
  run(first_half);
  Options rest = fake_options(60);
  rest.checkpoint_dir = dir.string();
  const RunOutput resumed = run(rest);
  EXPECT_NE(resumed.log.find("Resuming from "), std::string::npos);
  EXPECT_EQ(resumed.log.find("Accuracy at step 20:"), std::string::npos);
  EXPECT_EQ(resumed.params, straight.params);

  Options other = fake_options(60);
  other.checkpoint_dir = dir.string();
  other.hidden_units = 16;  // a checkpoint of another model is refused
  expect_run_error(other, ExitCode::kBadArguments, "hidden_units");
  fs::remove_all(dir);
}

TEST(TrainingLoop, StopRequestSavesACheckpointAndIsExitCode143) {
  const fs::path dir = fs::temp_directory_path() / ("mnist_term_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  Options o = fake_options(50);
  o.checkpoint_dir = dir.string();
  set_stop_signal_for_testing(SIGTERM);
  expect_run_error(o, ExitCode::kTerminated, "checkpoint saved");
  set_stop_signal_for_testing(SIGINT);
  expect_run_error(o, ExitCode::kInterrupted, "stopped by SIGINT");
  set_stop_signal_for_testing(0);
  EXPECT_TRUE(fs::exists(dir / "model.ckpt"));
  fs::remove_all(dir);
}

std::vector<std::string> lines_of(const fs::path& file) {
  std::ifstream in(file);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST(TrainingLoop, SummariesAndCheckpointsSurviveAResume) {
  const fs::path dir = fs::temp_directory_path() / ("mnist_resume_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  Options first = fake_options(25);
  first.log_dir = (dir / "logs").string();
  first.checkpoint_dir = (dir / "ckpt").string();
  run(first);
  const auto saved =
      decode_checkpoint(read_file((dir / "ckpt" / "model.ckpt").string(), 1 << 24), "model.ckpt");
  EXPECT_EQ(saved.iteration, 25);
  EXPECT_GT(saved.last_loss, 0.0f);
  Options rest = first;
  rest.max_steps = 60;
  const RunOutput resumed = run(rest);
  EXPECT_NE(resumed.log.find("Resuming from "), std::string::npos);
  // Appended, not truncated: the first run's 0, 10, 20 and the second's 30, 40, 50.
  const auto test_lines = lines_of(dir / "logs" / "test" / "scalars.jsonl");
  ASSERT_EQ(test_lines.size(), 6u);
  EXPECT_NE(test_lines[0].find("\"step\":0"), std::string::npos) << test_lines[0];
  EXPECT_NE(test_lines[3].find("\"step\":30"), std::string::npos) << test_lines[3];
  // The resumed run's first summary at an evaluation logs the checkpoint's loss, not a stale one.
  const auto train_lines = lines_of(dir / "logs" / "train" / "scalars.jsonl");
  const auto at_30 = std::find_if(train_lines.begin(), train_lines.end(), [](const std::string& l) {
    return l.find("\"step\":30,") != std::string::npos ||
           l.find("\"step\":30}") != std::string::npos;
  });
  ASSERT_NE(at_30, train_lines.end());
  const auto record = nlohmann::json::parse(*at_30);
  EXPECT_NE(record["cross_entropy"].get<double>(), 0.0) << *at_30;
  fs::remove_all(dir);
}

TEST(TrainingLoop, PeriodicCheckpointsByStepsKeepTheLastTwo) {
  const fs::path dir = fs::temp_directory_path() / ("mnist_periodic_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  Options o = fake_options(35);
  o.checkpoint_dir = dir.string();
  // Stopped right after the checkpoint at iteration 30: the periodic ones were written.
  run(o, [](RunConfig& c) {
    c.checkpoint_every_steps = 10;
    c.checkpoint_every_seconds = 0;
  });
  auto iteration = [&](const char* name) {
    return decode_checkpoint(read_file((dir / name).string(), 1 << 24), name).iteration;
  };
  EXPECT_EQ(iteration("model.ckpt"), 35);
  EXPECT_EQ(iteration("model.ckpt.1"), 30);
  fs::remove_all(dir);
}

TEST(TrainingLoop, UnwritableOutputsAreExitCode6) {
  const fs::path dir =
      fs::temp_directory_path() / ("mnist_unwritable_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  write_file_atomically((dir / "a_file").string(), {'x'});
  Options o = fake_options(15);
  o.log_dir = (dir / "a_file").string();  // a file where a folder should be
  expect_run_error(o, ExitCode::kOutputFailed, "a_file");

  // The log itself (stdout): a stream that refuses writes stops the run.
  const RunConfig config = run_config(fake_options(15));
  auto backend = make_backend(BackendKind::kCpu, config.train, fake());
  std::ostringstream broken;
  broken.setstate(std::ios::badbit);
  try {
    run_training_loop(config, *backend, fake(), ResumePoint{}, broken);
    ADD_FAILURE() << "a failed log write must not pass";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kOutputFailed);
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace mnist
