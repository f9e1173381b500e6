// The run's verdict, for machines: `log_dir/result.json` and `--result_file` (JSON), and one line
// in Kubernetes' termination-message file (`--termination_log`, /dev/termination-log) that `kubectl
// get pod` shows. main() fills a RunRecord in as the stages pass and, whatever the outcome, hands
// it to finish_run() at exit. Also the final summary line of a training run and the one description
// of a CUDA device that the verdict and --benchmark_out share.
#pragma once

#include <chrono>
#include <cstddef>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "app/cli.h"
#include "data/dataset.h"
#include "error.h"
#include "gpu/device.h"
#include "train/loop.h"

namespace mnist {

// "1.0.0": CMakeLists.txt's project(VERSION), as --version prints it.
const char* program_version();

// What an exit code stands for, in a few words ("GPU unusable"); "ok" for 0.
std::string exit_code_name(int code);

// Kubernetes reads at most this many bytes of a termination message.
constexpr std::size_t kTerminationMessageLimit = 4096;

// What a run has found out so far. Whatever is unset was not reached.
struct RunRecord {
  RunRecord(int argc, const char* const* argv);

  std::vector<std::string> command_line;
  std::chrono::system_clock::time_point started_at;
  std::chrono::steady_clock::time_point started;

  std::optional<Options> options;      // once the flags are parsed
  std::optional<BackendKind> backend;  // once resolved (never kAuto)
  std::string step_kernel;             // the backend's step_kernel(), once built

  // The GPUs: whether CUDA was asked, what it said, what this process used.
  std::optional<GpuProbe> probe;
  std::vector<DeviceInfo> visible;
  std::string device_error;  // a device whose properties could not be read
  std::vector<DeviceInfo> used;

  struct DataSummary {
    DataOrigin origin;
    int train_images = 0, validation_images = 0, test_images = 0;
  };
  std::optional<DataSummary> data;
  std::optional<TrainResult> training;
  // A data-parallel run (--gpus over several GPUs, or --world_size > 1).
  struct DataParallel {
    int rank = 0, world_size = 1;   // this process among the processes of the run
    int first_rank = 0, ranks = 1;  // its GPUs' global ranks, and the GPUs of the world
    std::string nccl;               // "NCCL 2.28.9"
    // The all-reduce of the gradient's size measured at start (nccl-tests' definitions).
    std::size_t all_reduce_bytes = 0;
    double all_reduce_us = 0.0, algorithm_gbps = 0.0, bus_gbps = 0.0;
    bool parameters_agree = false;  // checked bit for bit at the end of training
  };
  std::optional<DataParallel> data_parallel;
  nlohmann::ordered_json benchmark;  // --benchmark's report (null otherwise)

  // Asks CUDA which devices there are; with `used`, the devices `ordinals` are the ones the run
  // uses (throws Error(kGpuUnusable) when their properties cannot be read).
  void note_gpus(bool used, const std::vector<int>& ordinals = {0});
  // Keeps the data's origin and sizes (not its images).
  void note_data(const MnistData& data);
};

// How the run ended: the exit code, and for a failure the one-line message printed on stderr.
struct Outcome {
  ExitCode code = ExitCode::kOk;
  std::string message;
};

// The verdict document (written to result.json and --result_file).
nlohmann::ordered_json verdict_json(const RunRecord& record, const Outcome& outcome,
                                    std::chrono::system_clock::time_point finished_at);

// The one-line termination message ("mnist-train 1.0.0 passed: test accuracy ..." or
// "mnist-train 1.0.0 failed (exit 4, GPU unusable): ..."): no control characters, at most
// kTerminationMessageLimit - 1 bytes (room for the newline), cut on a UTF-8 boundary with "...".
std::string termination_line(const RunRecord& record, const Outcome& outcome);

// Makes `text` one line of at most `limit` bytes: control characters become spaces, and a longer
// text is cut on a UTF-8 character boundary and ends in "...".
std::string one_line(const std::string& text, std::size_t limit);

enum class TerminationLogStatus {
  kWritten,
  kDisabled,     // the path is empty
  kAbsent,       // nothing there: never created
  kNotWritable,  // read-only (no write permission bit, EACCES, EROFS)
  kRefused,      // a link, FIFO, folder, device or socket: never written through
  kFailed,       // opened, but the write failed (full disk)
};
struct TerminationLogResult {
  TerminationLogStatus status;
  std::string detail;  // for kRefused and kFailed: what was found or the OS error
};

// Why the termination message may not go to `path`, or "" when it may. It goes only into a
// regular file of a file system that stores files (Kubernetes' /dev/termination-log is one, bind-
// mounted by the kubelet), and nowhere when nothing is there. A link, folder, FIFO, socket or
// device, or a kernel interface that looks like a file (/proc/self/comm, a /sys file), is refused:
// "a FIFO", "a file of /proc (a kernel interface)". Looks without opening; never throws.
std::string termination_log_refusal(const std::string& path);

// Writes `line` and a newline into `path` when it already is a regular file with a write
// permission bit set that this process may open for writing, replacing what was there. Never
// creates the file, never follows a link, never blocks on a FIFO (O_NOFOLLOW | O_NONBLOCK, no
// O_CREAT; the file is truncated only after fstat found a regular file), never writes what
// termination_log_refusal() refuses. The line is held to kTerminationMessageLimit bytes, newline
// included. Never throws.
TerminationLogResult write_termination_log(const std::string& path, const std::string& line);

// A verdict file: log_dir/result.json (training runs with a --log_dir) or --result_file, and the
// flag it comes from (for messages).
struct VerdictFile {
  std::string path;
  std::string flag;
};
// The verdict files finish_run() writes for a run with these flags.
std::vector<VerdictFile> verdict_files(const Options& options);

// Throws Error(kOutputFailed) naming the file when what lies under its name keeps the verdict out
// at the end: a folder, or under --result_file anything but a regular file (a link, FIFO or device
// is never written over; one under log_dir/result.json is replaced). finish_run() applies the same
// rule.
void check_verdict_file(const VerdictFile& file);

// At exit, whatever happened: writes log_dir/result.json (training runs with a --log_dir),
// --result_file and the termination message (not for --dry_run, and not before the flags were
// parsed), each with the final outcome. A verdict file that cannot be written turns a passing run
// into exit 6; a failing run keeps its code. Problems are reported on `err`. Returns the exit code
// for main. Never throws.
int finish_run(RunRecord& record, const Outcome& outcome, std::ostream& err) noexcept;

// "Summary: 450 training steps, 812345 images/s, 0.058 s in the loop, 1.2 s downloading (9.9 MB)"
std::string summary_line(const TrainResult& result, const DataOrigin& origin);

// A device as the verdict and --benchmark_out name it: name, compute capability, multiprocessors,
// memory, PCI bus id, UUID.
nlohmann::ordered_json device_json(const DeviceInfo& device);

// Driver and runtime versions and the visible devices, for --benchmark_out.
nlohmann::ordered_json gpu_environment_json(const GpuProbe& probe,
                                            const std::vector<DeviceInfo>& visible);

}  // namespace mnist
