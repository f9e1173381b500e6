#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <thread>

#include "app/backends.h"
#include "app/cli.h"
#include "data/fileio.h"
#include "error.h"
#include "stop.h"
#include "train/checkpoint.h"
#include "train/loop.h"
#include "watchdog.h"

namespace mnist {
namespace {

namespace fs = std::filesystem;

// The loop's test-only stall stand-in (loop.h) plays no part unless a test sets it.
[[maybe_unused]] const bool kStallStandInCleared = ::unsetenv("MNIST_TEST_STALL_AT_STEP") == 0;

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

// The events of a TensorBoard event file, each as its step and its encoded bytes (a minimal
// TFRecord and Event reader; tests/summary/read_events.py is the full, independent one).
struct RawEvent {
  std::int64_t step = 0;  // protobuf leaves a zero step out
  std::string bytes;
};

std::vector<RawEvent> read_events(const fs::path& file) {
  const std::vector<std::uint8_t> raw = read_file(file.string(), 1 << 28);
  const std::string data(raw.begin(), raw.end());
  std::vector<RawEvent> events;
  std::size_t at = 0;
  while (at + 12 <= data.size()) {
    std::uint64_t length = 0;
    std::memcpy(&length, data.data() + at, 8);
    EXPECT_LE(at + 12 + length + 4, data.size()) << file;
    if (at + 12 + length + 4 > data.size()) break;
    RawEvent e;
    e.bytes = data.substr(at + 12, length);
    // Event.step is field 2, a varint (tag byte 0x10), after the 9-byte wall_time (field 1).
    if (e.bytes.size() > 10 && std::uint8_t(e.bytes[9]) == 0x10) {
      std::int64_t step = 0;
      int shift = 0;
      for (std::size_t i = 10; i < e.bytes.size(); ++i, shift += 7) {
        step |= std::int64_t(std::uint8_t(e.bytes[i]) & 0x7f) << shift;
        if (!(std::uint8_t(e.bytes[i]) & 0x80)) break;
      }
      e.step = step;
    }
    events.push_back(e);
    at += 12 + length + 4;
  }
  EXPECT_EQ(at, data.size()) << file << ": trailing bytes";
  return events;
}

std::vector<fs::path> event_files(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.path().filename().string().rfind("events.out.tfevents.", 0) == 0)
      files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  return files;
}

// The steps of the events that hold `tag`, in file order.
std::vector<std::int64_t> steps_with(const std::vector<RawEvent>& events, const std::string& tag) {
  std::vector<std::int64_t> steps;
  for (const RawEvent& e : events)
    if (e.bytes.find(tag) != std::string::npos) steps.push_back(e.step);
  return steps;
}

TEST(TrainingLoop, WritesTheSampleSummariesAsEventFiles) {
  Options o = fake_options(30);
  o.summary_every = 5;
  const fs::path dir = fs::temp_directory_path() / ("mnist_logs_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  o.log_dir = dir.string();
  run(o);
  for (const char* split : {"train", "test", "validation"}) {
    ASSERT_EQ(event_files(dir / split).size(), 1u) << split;
    const auto events = read_events(event_files(dir / split)[0]);
    ASSERT_FALSE(events.empty());
    EXPECT_NE(events[0].bytes.find("brain.Event:2"), std::string::npos) << split;
  }
  const auto test = read_events(event_files(dir / "test")[0]);
  EXPECT_EQ(steps_with(test, "accuracy"), (std::vector<std::int64_t>{0, 10, 20}));
  EXPECT_EQ(steps_with(test, "cross_entropy"), (std::vector<std::int64_t>{0, 10, 20}));
  EXPECT_EQ(steps_with(test, "input_reshape/input/image/9"), (std::vector<std::int64_t>{0}));
  // Validation every --summary_every evaluations (here every 50 iterations) and at the first.
  const auto validation = read_events(event_files(dir / "validation")[0]);
  EXPECT_EQ(steps_with(validation, "accuracy"), (std::vector<std::int64_t>{0}));
  const auto train = read_events(event_files(dir / "train")[0]);
  std::vector<std::int64_t> training_steps;
  for (int i = 0; i < 30; ++i)
    if (i % 10) training_steps.push_back(i);
  EXPECT_EQ(steps_with(train, "cross_entropy"), training_steps);
  // Statistics every 5th training step of the run: steps 0, 5, 10, ... are iterations 1, 6, 12,
  // 17, 23, 28 (iterations 0, 10, 20 evaluate).
  EXPECT_EQ(steps_with(train, "layer1/weights/summaries/histogram"),
            (std::vector<std::int64_t>{1, 6, 12, 17, 23, 28}));
  EXPECT_EQ(steps_with(train, "layer2/activations"), steps_with(train, "layer1/activations"));
  EXPECT_EQ(steps_with(train, "input_reshape/input/image/0"),
            steps_with(train, "dropout/dropout_keep_probability"));
  EXPECT_EQ(steps_with(train, "flags"), (std::vector<std::int64_t>{0}));
  EXPECT_EQ(steps_with(train, "images_per_second"), (std::vector<std::int64_t>{10, 20}));
  fs::remove_all(dir);
}

TEST(TrainingLoop, WritesATraceOfStep99) {
  Options o = fake_options(101);
  const fs::path dir = fs::temp_directory_path() / ("mnist_trace_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  o.log_dir = dir.string();
  const RunOutput r = run(o);
  EXPECT_NE(r.log.find("Adding run metadata for 99\n"), std::string::npos);
  const auto trace =
      nlohmann::json::parse(read_file((dir / "traces" / "step_99.trace.json").string(), 1 << 20));
  int complete = 0;
  for (const auto& e : trace["traceEvents"]) {
    if (e["ph"] != "X") continue;
    ++complete;
    EXPECT_GE(e["dur"].get<double>(), 0.0);
    EXPECT_GE(e["ts"].get<double>(), 0.0);
  }
  EXPECT_EQ(complete, 3);  // the CPU backend's phases: gather, forward/loss/backward, Adam
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

// A log volume that fails (here: a folder where the trace of step 99 must go) ends the run with
// exit 6, but never at the cost of the training: the checkpoint is saved first, mid-run and at the
// end alike.
TEST(TrainingLoop, ASummariesFailureStillSavesTheCheckpoint) {
  for (int max_steps : {105, 160}) {
    const fs::path dir =
        fs::temp_directory_path() / ("mnist_sumfail_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir / "logs" / "traces" / "step_99.trace.json");
    Options o = fake_options(max_steps);
    o.log_dir = (dir / "logs").string();
    o.checkpoint_dir = (dir / "ckpt").string();
    o.checkpoint_every = "0";
    expect_run_error(o, ExitCode::kOutputFailed, "step_99.trace.json");
    ASSERT_TRUE(fs::exists(dir / "ckpt" / "model.ckpt")) << "max_steps " << max_steps;
    const auto saved =
        decode_checkpoint(read_file((dir / "ckpt" / "model.ckpt").string(), 1 << 24), "model.ckpt");
    EXPECT_GE(saved.iteration, 100) << "max_steps " << max_steps;
    EXPECT_LE(saved.iteration, max_steps);
    fs::remove_all(dir);
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
  // Appended, not truncated: a second event file per folder beside the first, which is unchanged.
  for (const char* split : {"train", "test", "validation"})
    ASSERT_EQ(event_files(dir / "logs" / split).size(), 2u) << split;
  const auto first_test = read_events(event_files(dir / "logs" / "test")[0]);
  const auto second_test = read_events(event_files(dir / "logs" / "test")[1]);
  EXPECT_EQ(steps_with(first_test, "accuracy"), (std::vector<std::int64_t>{0, 10, 20}));
  EXPECT_EQ(steps_with(second_test, "accuracy"), (std::vector<std::int64_t>{30, 40, 50}));
  // The resumed run's training steps continue where the first one stopped.
  const auto second_train = read_events(event_files(dir / "logs" / "train")[1]);
  const auto resumed_steps = steps_with(second_train, "cross_entropy");
  ASSERT_FALSE(resumed_steps.empty());
  EXPECT_EQ(resumed_steps.front(), 25);
  EXPECT_EQ(steps_with(second_train, "flags"), (std::vector<std::int64_t>{25}));
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

// The stall watchdog (watchdog.h). A stall ends the process with _exit, so every test whose
// watchdog may fire runs in a child process (a death test).

// The callback of these tests: the stall's message on stderr; exit 9 for a stall in `phase`, 8 for
// any other.
Watchdog::OnStall exit_9_for(const char* phase) {
  return [phase](const Stall& stall) {
    std::cerr << stall_message(stall) << std::endl;
    return std::strcmp(stall.phase, phase) == 0 ? 9 : 8;
  };
}

void sleep_s(double seconds) {
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
}

class WatchdogTest : public ::testing::Test {
 protected:
  // The child re-executes the binary: a forked copy of a threaded process may deadlock.
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_F(WatchdogTest, EndsTheRunWithTheCallbacksCodeWhenHeartbeatsStop) {
  EXPECT_EXIT(
      {
        Watchdog watchdog(0.2, exit_9_for("training"));
        heartbeat("training");
        sleep_s(20);  // a hundred times the limit
        std::exit(0);
      },
      ::testing::ExitedWithCode(9),
      "stalled: no progress for .* s in phase training \\(its limit is 0.2 s\\)");
}

TEST_F(WatchdogTest, StaysQuietWhileHeartbeatsCome) {
  EXPECT_EXIT(
      {
        {
          Watchdog watchdog(2.0, exit_9_for("training"));
          const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
          while (std::chrono::steady_clock::now() < end) {
            heartbeat("training");
            sleep_s(0.01);
          }
        }
        std::exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST_F(WatchdogTest, GivesEachPhaseItsAllowance) {
  EXPECT_EXIT(
      {
        Watchdog watchdog(0.3, exit_9_for("training"));
        watchdog.allow("test_slow_phase", 60);
        // Five times the default limit in each: "cuda_init" and "download" have at least
        // kSlowPhaseLimitS, "test_slow_phase" what allow() gave it.
        for (const char* phase : {"cuda_init", "download", "test_slow_phase"}) {
          heartbeat(phase);
          sleep_s(1.5);
        }
        heartbeat("training");
        sleep_s(20);
        std::exit(0);
      },
      ::testing::ExitedWithCode(9), "in phase training");
}

TEST_F(WatchdogTest, ASilentPhaseWithTheDefaultLimitStalls) {
  EXPECT_EXIT(
      {
        Watchdog watchdog(0.3, exit_9_for("test_other_phase"));
        watchdog.allow("test_slow_phase", 60);
        heartbeat("test_other_phase");
        sleep_s(20);
        std::exit(0);
      },
      ::testing::ExitedWithCode(9), "in phase test_other_phase \\(its limit is 0.3 s\\)");
}

TEST_F(WatchdogTest, DestructorStopsTheThreadPromptly) {
  EXPECT_EXIT(
      {
        ::alarm(60);  // SIGALRM ends a child whose watchdog thread is not woken (it sleeps 900 s)
        {
          Watchdog watchdog(3600, exit_9_for("none"));
          heartbeat("training");
          sleep_s(0.5);  // the thread is waiting by now
        }
        std::exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST_F(WatchdogTest, IsOffWhenTheLimitIsZero) {
  EXPECT_EXIT(
      {
        {
          Watchdog watchdog(0, exit_9_for("training"));
          heartbeat("training");
          sleep_s(1);
        }
        std::exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST_F(WatchdogTest, EndsTheRunWhenTheCallbackHangs) {
  EXPECT_EXIT(
      {
        Watchdog watchdog(
            0.2,
            [](const Stall&) -> int {
              for (;;) ::pause();
            },
            0.5);
        heartbeat("training");
        sleep_s(30);
        std::exit(0);
      },
      ::testing::ExitedWithCode(4), "stalled, and the verdict was not written in time");
}

TEST_F(WatchdogTest, AStallNeverPasses) {
  auto stall_with = [](Watchdog::OnStall on_stall) {
    Watchdog watchdog(0.2, std::move(on_stall));
    heartbeat("training");
    sleep_s(20);
    std::exit(0);
  };
  EXPECT_EXIT(stall_with([](const Stall&) { return 0; }), ::testing::ExitedWithCode(4), "");
  EXPECT_EXIT(stall_with([](const Stall&) -> int { throw std::runtime_error("verdict"); }),
              ::testing::ExitedWithCode(4), "");
  EXPECT_EXIT(stall_with({}), ::testing::ExitedWithCode(4),
              "stalled: no progress .* in phase training");
}

TEST(TrainingLoop, SendsAHeartbeatAtTheEnd) {
  heartbeat("test_before_the_loop");
  const auto before = std::chrono::steady_clock::now();
  run(fake_options(3));
  const Heartbeat last = last_heartbeat();
  EXPECT_STREQ(last.phase, "evaluation");  // the final evaluation (step 3 is not an eval step)
  EXPECT_GE(last.at, before);
}

// The test-only stand-in for a hung GPU call: the loop blocks at that iteration, in that
// iteration's phase, until the watchdog ends the run.
TEST(TrainingLoop, TheStallStandInHangsUntilTheWatchdogEndsTheRun) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto stall_at = [](const char* step, const char* phase) {
    ::alarm(120);  // SIGALRM ends the child if nothing else does: the stand-in never returns
    ::setenv("MNIST_TEST_STALL_AT_STEP", step, 1);
    Watchdog watchdog(3.0, exit_9_for(phase));
    run(fake_options(30));
    std::exit(0);  // the loop finished: no stall
  };
  EXPECT_EXIT(stall_at("5", "training"), ::testing::ExitedWithCode(9), "in phase training");
  EXPECT_EXIT(stall_at("20", "evaluation"), ::testing::ExitedWithCode(9), "in phase evaluation");
}

}  // namespace
}  // namespace mnist
