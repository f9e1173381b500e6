// The run's verdict, for machines: `log_dir/result.json` and `--result_file` (JSON, a versioned
// interface: docs/result.schema.json), `--metrics_file` (the same verdict for Prometheus:
// app/metrics.h), and one line in Kubernetes' termination-message file (`--termination_log`,
// /dev/termination-log) that `kubectl get pod` shows. main() fills a RunRecord in as the stages
// pass and, whatever the outcome, hands it to finish_run() at exit. Also the final summary line of
// a training run and the one description of a CUDA device that the verdict and --benchmark_out
// share.
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
#include "gpu/health.h"
#include "train/loop.h"

namespace mnist {

// "1.0.0": CMakeLists.txt's project(VERSION), as --version prints it.
const char* program_version();

// result.json's "schema_version": the documents of one version validate against
// docs/result.schema.json of that version. It goes up by one with any change that an older schema
// could reject or a reader could misread: a field added, removed or renamed, a type or meaning
// changed, a value added to an enumeration (a reason, a status). Check names are not enumerated:
// a new check keeps the version.
constexpr int kResultSchemaVersion = 2;

// What an exit code stands for, in a few words ("GPU unusable"); "ok" for 0. For people: the
// termination message, result.json's "exit_description".
std::string exit_code_name(int code);

// The same as a stable snake_case token ("gpu_unusable"): result.json's "exit_name".
std::string exit_code_token(int code);

// Why a run ended, as a stable token (result.json's "reason", the termination message's
// "reason=", the metrics' "reason" label). Each reason belongs to one exit code, so a finer reason
// never needs a new code: the first of each code is its default, the others are named by the code
// path that knows (RunRecord::reason) or found from what the run recorded (run_reason()).
struct Reason {
  const char* token;
  ExitCode code;
  const char* meaning;
};
// Every reason, in the order of docs/result.schema.json's enumeration.
const std::vector<Reason>& reasons();

// The node a run is on, for the verdict: NODE_NAME (set from the Kubernetes downward API,
// spec.nodeName) when it is a valid name, else the host name, else "unknown". A valid name is 1 to
// 253 bytes (a Kubernetes node name's limit) of printable ASCII without spaces, so that it is one
// word in the termination message and a plain label value.
std::string node_name(const char* node_env, const std::string& host);
// The same from this process's NODE_NAME and gethostname().
std::string node_name();

// When and where a report was made, for --benchmark_out: "timestamp" (RFC 3339, UTC, with
// milliseconds), "host" (the host name: the pod's in Kubernetes) and "node" (node_name()).
nlohmann::ordered_json provenance_json(std::chrono::system_clock::time_point now);

// A check in the verdict: of one GPU (its CUDA ordinal), or of the whole run (no gpu).
struct RunCheck {
  std::optional<int> gpu;
  health::Check check;
};

// Kubernetes reads at most this many bytes of a termination message.
constexpr std::size_t kTerminationMessageLimit = 4096;

// What a run has found out so far. Whatever is unset was not reached.
struct RunRecord {
  RunRecord(int argc, const char* const* argv);

  std::vector<std::string> command_line;
  std::chrono::system_clock::time_point started_at;
  std::chrono::steady_clock::time_point started;

  std::string node;  // node_name(), at start

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

  // A finer reason for the failure (a token of reasons()), set by the code path that knows it;
  // used only when it belongs to the run's exit code (a later SIGTERM's 143 keeps "terminated").
  std::string reason;
  // Per-GPU checks (NVML health, the speed probe), in the order they were made.
  std::vector<RunCheck> gpu_checks;
  // How many GPUs passed the GEMM self-check before training (gpu/gpu_check.h check_gpus; it runs
  // for several GPUs or one other than GPU 0): the run-level check "gpu_self_check".
  int self_checked_gpus = 0;
  // The final test accuracy the run must reach (the "accuracy" check's threshold); 0: none.
  double accuracy_floor = 0.0;

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

// The run's reason (a token of reasons()): record.reason when it belongs to the outcome's code,
// else one found from the record (exit 3 after the data loaded: peers_lost; exit 4 with no device
// seen: no_device or driver_too_old; a wrong answer in the GPU self-check: wrong_answer), else the
// code's default.
std::string run_reason(const RunRecord& record, const Outcome& outcome);

// The verdict's checks: record.gpu_checks, then the run-level ones: gpu_self_check (when it ran
// or failed), accuracy (final test accuracy against record.accuracy_floor, when training ended),
// finite_loss (when training ended or diverged).
std::vector<RunCheck> run_checks(const RunRecord& record, const Outcome& outcome);

// The verdict document (written to result.json and --result_file; docs/result.schema.json).
nlohmann::ordered_json verdict_json(const RunRecord& record, const Outcome& outcome,
                                    std::chrono::system_clock::time_point finished_at);

// The one-line termination message, its leading words those operators grep for:
//   mnist-train 1.0.0 passed: test accuracy ... | reason=ok node=NODE
//   mnist-train 1.0.0 failed (exit 4, GPU unusable): MESSAGE | reason=no_device node=NODE
// then, for a failure, " check=" and the first failing check, for a pass the first warning as
// " warning=". No control characters, at most kTerminationMessageLimit - 1 bytes (room for the
// newline): a long message is cut on a UTF-8 boundary with "...", the part from " | " never.
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

// A verdict file: log_dir/result.json (training runs with a --log_dir), --result_file (JSON) or
// --metrics_file (Prometheus' text format), and the flag it comes from (for messages).
struct VerdictFile {
  enum class Format { kJson, kPrometheus };
  std::string path;
  std::string flag;
  Format format = Format::kJson;
};
// The verdict files finish_run() writes for a run with these flags.
std::vector<VerdictFile> verdict_files(const Options& options);

// Throws Error(kOutputFailed) naming the file when what lies under its name keeps the verdict out
// at the end: a folder, or under a file the user named (--result_file, --metrics_file) anything
// but a regular file (a link, FIFO or device is never written over; one under log_dir/result.json
// is replaced). finish_run() applies the same rule.
void check_verdict_file(const VerdictFile& file);

// At exit, whatever happened: writes log_dir/result.json (training runs with a --log_dir),
// --result_file, --metrics_file and the termination message (not for --dry_run, and not before the
// flags were parsed), each with the final outcome. A verdict file that cannot be written turns a
// passing run into exit 6; a failing run keeps its code. Problems are reported on `err`. Returns
// the exit code for main. Never throws.
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
