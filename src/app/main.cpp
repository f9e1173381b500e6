// mnist-train: parse the flags, check the outputs and the GPU, load the data, build a backend,
// run the TF sample's loop (or --benchmark), report. Every failure becomes one line on stderr and
// a documented exit code (see error.h and README.md); every outcome after the flags were parsed
// also becomes a verdict (result.json, --result_file, the termination message: app/report.h).
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <filesystem>
#include <iostream>
#include <memory>
#include <new>
#include <stdexcept>

#include "app/backends.h"
#include "app/benchmark.h"
#include "app/cli.h"
#include "app/node_check.h"
#include "app/parallel.h"
#include "app/report.h"
#include "data/catalog.h"
#include "data/dataset.h"
#include "data/fileio.h"
#include "dist/rendezvous.h"
#include "error.h"
#include "gpu/libraries.h"
#include "kernels/cuda_error.h"
#include "progress.h"
#include "stop.h"
#include "train/checkpoint.h"
#include "train/loop.h"
#include "watchdog.h"

namespace mnist {
namespace {

// Opens /dev/null on whichever of descriptors 0, 1 and 2 is closed, before anything else opens a
// file: the lowest free descriptor would otherwise be a lock or a data file, and the log or the
// errors would be written into it. Read-only: a write to a descriptor that was closed still fails
// (EBADF). Returns whether stdout was closed.
bool open_closed_standard_descriptors() {
  bool stdout_closed = false;
  for (int fd = 0; fd <= 2; ++fd) {
    if (::fcntl(fd, F_GETFD) != -1 || errno != EBADF) continue;
    if (fd == STDOUT_FILENO) stdout_closed = true;
    // The lower descriptors are open, so open() returns `fd`, which stays open until exit.
    ::open("/dev/null", O_RDONLY);
  }
  return stdout_closed;
}

// The longest names a training run writes in --log_dir and --checkpoint_dir, temporaries
// included: validation/events.out.tfevents.<10 digits>.<host name>.<3 digits>
// (summary/event_writer.h), traces/step_<iteration>.trace.json and result.json (each through a
// temporary); model.ckpt's temporary, model.ckpt.1, .run.lock.
constexpr std::size_t kLongestInLogDir =
    std::max(sizeof("validation/events.out.tfevents.0123456789.") - 1 + HOST_NAME_MAX + 4,
             sizeof("traces/step_2147483647.trace.json") - 1 + kTemporarySuffixBytes);
constexpr std::size_t kLongestInCheckpointDir = sizeof("model.ckpt") - 1 + kTemporarySuffixBytes;

// The longest name written in --data_dir: a data file's temporary (or the lock).
std::size_t longest_in_data_dir(const std::string& dataset) {
  const DatasetSpec spec = builtin_dataset_spec(dataset);
  std::size_t longest = std::string(FolderLock::kDataLock).size();
  for (const DataFileSpec* file :
       {&spec.train_images, &spec.train_labels, &spec.test_images, &spec.test_labels})
    longest = std::max(longest, file->name.size() + kTemporarySuffixBytes);
  return longest;
}

// Every path the run will write under is checked for length first, --dry_run included: a name
// no file system can hold is a bad flag (exit 2), found before anything is created or fetched.
void check_path_lengths(const Options& o) {
  const bool training = !o.benchmark && !o.download_only;
  for (const VerdictFile& file : verdict_files(o))
    check_path_fits(file.path, kTemporarySuffixBytes, file.flag);
  if (o.benchmark && !o.benchmark_out.empty())
    check_path_fits(o.benchmark_out, kTemporarySuffixBytes, "--benchmark_out");
  if (training && !o.log_dir.empty()) check_path_fits(o.log_dir, 1 + kLongestInLogDir, "--log_dir");
  if (training && !o.checkpoint_dir.empty())
    check_path_fits(o.checkpoint_dir, 1 + kLongestInCheckpointDir, "--checkpoint_dir");
  if (o.download_only || !o.fake_data)
    check_path_fits(o.data_dir, 1 + longest_in_data_dir(o.dataset), "--data_dir");
}

// A file the user names as an output: a file name whose folder can be written, and nothing but a
// regular file (or nothing) under that name.
void check_output_file(const std::string& path, const char* flag) {
  const std::filesystem::path out(path);
  if (!out.has_filename() || file_kind(path) == FileKind::kOther) {
    throw Error(ExitCode::kOutputFailed, path + ": not a file name (" + flag +
                                             "): a folder, link, FIFO or device is never "
                                             "written over");
  }
  const std::string dir = out.parent_path().string();
  ensure_writable_directory(dir.empty() ? "." : dir, flag, ExitCode::kOutputFailed);
}

// Outputs are checked before anything long starts (a download, a benchmark, training), so a typo
// fails in seconds: the folders, and whatever lies under the verdict files' names.
void check_outputs(const Options& options) {
  const bool training = !options.benchmark && !options.download_only;
  if (!options.log_dir.empty() && training)
    ensure_writable_directory(options.log_dir, "--log_dir", ExitCode::kOutputFailed);
  if (!options.checkpoint_dir.empty() && !options.download_only)
    ensure_writable_directory(options.checkpoint_dir, "--checkpoint_dir", ExitCode::kOutputFailed);
  if (!options.benchmark_out.empty() && !options.download_only)
    check_output_file(options.benchmark_out, "--benchmark_out");
  if (!options.result_file.empty()) check_output_file(options.result_file, "--result_file");
  if (!options.metrics_file.empty()) check_output_file(options.metrics_file, "--metrics_file");
  for (const VerdictFile& file : verdict_files(options)) check_verdict_file(file);
}

void require_batch_fits(int batch, int train_images, const char* flag = "--batch_size") {
  if (batch > train_images) {
    throw Error(ExitCode::kBadArguments, std::string(flag) + " " + std::to_string(batch) +
                                             " exceeds the " + std::to_string(train_images) +
                                             " training images");
  }
}

// The termination message goes into a regular file or nowhere (report.h); anything else under
// --termination_log is a bad flag, found at start rather than at exit.
void check_termination_log(RunRecord& record) {
  const std::string path = record.options->termination_log;
  const std::string refusal = termination_log_refusal(path);
  if (refusal.empty()) return;
  record.options->termination_log.clear();  // the refused path is never written
  throw Error(ExitCode::kBadArguments,
              "--termination_log " + path + ": " + refusal +
                  "; the termination message goes only into a regular file (Kubernetes' " +
                  kDefaultTerminationLog + "), or --termination_log \"\" for none");
}

void check_stdout() {
  std::cout.flush();
  if (!std::cout)
    throw Error(ExitCode::kOutputFailed, "cannot write to stdout: full disk or closed pipe?");
}

Outcome fail(const char* kind, const std::string& message, ExitCode code) {
  std::cout.flush();
  clear_status();
  std::cerr << "mnist-train: " << kind << ": " << message << std::endl;
  return {code, message};
}

// The run; `record` collects what the verdict reports, whatever happens.
void run(int argc, char** argv, RunRecord& record, bool stdout_closed) {
  install_stop_handlers();
  const auto parsed = parse_command_line(argc, argv);
  if (!parsed) {  // --help or --version was printed
    check_stdout();
    return;
  }
  record.options = *parsed;
  const Options& options = *record.options;
  if (stdout_closed) {  // the log would be lost: known now, not after the run
    throw Error(ExitCode::kOutputFailed,
                "stdout is closed: nowhere to write the log (redirect it to /dev/null to drop it)");
  }
  check_termination_log(record);
  check_warn_only(options.warn_only);
  // A hung GPU (or driver) ends the run in minutes, not at the Job's deadline: the watchdog's
  // thread writes the verdict while this one is stuck (watchdog.h). A hung mirror or checkpoint
  // volume is no GPU fault: those phases keep their own exit codes, with "stalled" in the message.
  Watchdog watchdog(options.stall_timeout_s, [&record](const Stall& stall) {
    const std::string phase = stall.phase;
    const ExitCode code = phase == "download"     ? ExitCode::kDataUnavailable
                          : phase == "checkpoint" ? ExitCode::kOutputFailed
                                                  : ExitCode::kGpuUnusable;
    if (code == ExitCode::kGpuUnusable) record.reason = "stalled";
    return finish_run(record, fail("error", stall_message(stall), code), std::cerr);
  });
  // The rendezvous and NCCL's waits have their own deadline: theirs, and a margin.
  watchdog.allow("rendezvous", options.rendezvous_timeout_s + 60);
  watchdog.allow("nccl", options.rendezvous_timeout_s + 60);
  watchdog.allow("benchmark", 600);
  RunConfig config = run_config(options);
  // A run over several processes: only rank 0 writes summaries, checkpoints and result.json
  // (the others print the same lines and their own verdict).
  if (options.world_size > 1 && !options.dry_run && !options.download_only &&
      rank_from_environment(options.world_size) != 0) {
    config.log_dir.clear();
    config.checkpoint_dir.clear();
    record.options->log_dir.clear();
    record.options->result_file.clear();  // on a shared volume the ranks would overwrite it
  }
  // The training set's size is known before anything is fetched (the built-in datasets are pinned
  // by their checksums), so an impossible batch fails at once, --dry_run included.
  const int train_images = options.fake_data ? kFakeTrainImages : kTrainImages;
  require_batch_fits(config.train.batch_size, train_images);
  if (options.benchmark) {
    for (int batch : options.benchmark_batches)
      require_batch_fits(batch, train_images, "--benchmark_batches");
  }
  check_path_lengths(options);
  if (options.dry_run) {
    // Checked before anything prints; JOB_COMPLETION_INDEX is the rank only in a run of several.
    const int rank = options.world_size > 1 ? rank_from_environment(options.world_size) : 0;
    std::cout << "flags OK: backend " << backend_name(options.backend) << ", model "
              << model_name(config.train.model) << ", max_steps " << config.max_steps << ", batch "
              << config.train.batch_size << ", data "
              << (options.fake_data ? "synthetic" : options.dataset + " in " + options.data_dir)
              << ", precision " << precision_name(options.precision) << ", gpus "
              << options.gpus.text;
    if (options.world_size > 1) {
      std::cout << ", world_size " << options.world_size << " (this process: rank " << rank
                << "), rendezvous " << options.rendezvous;
    }
    std::cout << std::endl;
    check_stdout();
    return;
  }
  check_outputs(options);
  if (options.download_only) {
    record.note_data(load_dataset(data_source(options), std::cout));
    check_stdout();
    return;
  }
  // One run per checkpoint folder: a second one would overwrite the first one's checkpoints.
  std::unique_ptr<FolderLock> checkpoint_lock;
  if (!config.checkpoint_dir.empty() && !options.benchmark) {
    checkpoint_lock = std::make_unique<FolderLock>(
        config.checkpoint_dir,
        config.checkpoint_dir + ": another mnist-train run is using this --checkpoint_dir",
        FolderLock::kRunLock);
  }

  // The GPU is checked before any download, so a broken node fails in seconds.
  // --backend auto with flags that only GPUs honour (GPUs named, several processes, a tensor-core
  // precision, the fused step) is --backend cuda: it must not fall back to the CPU and pass.
  const bool wants_gpu = options.world_size > 1 || options.gpus.kind != GpuSelection::Kind::kAll ||
                         options.precision != Precision::kFp32 ||
                         options.step_kernel == StepKernel::kFused;
  const BackendKind requested =
      options.backend == BackendKind::kAuto && wants_gpu && !options.benchmark ? BackendKind::kCuda
                                                                               : options.backend;
  heartbeat("cuda_init");  // a first CUDA context may take minutes
  const BackendKind kind = resolve_backend(requested, std::cout);
  record.backend = kind;
  const bool gpu_present = kind != BackendKind::kCpu || (options.benchmark && gpu_visible());
  const GpuPlan plan = options.benchmark ? GpuPlan{} : plan_gpus(options, kind, std::cout);
  record.self_checked_gpus = static_cast<int>(plan.devices.size());
  if (gpu_present || options.backend == BackendKind::kAuto)
    record.note_gpus(gpu_present, plan.ordinals);
  // Libraries the run will load later are loaded now: a missing one fails before any download.
  if (options.benchmark && gpu_present) load_baseline_libraries();  // the cublas comparison
  if (plan.data_parallel) lib::nccl();

  const MnistData data = options.fake_data ? make_fake_data(config.train.seed)
                                           : load_dataset(data_source(options), std::cout);
  record.note_data(data);
  throw_if_stop_requested("after loading the data");
  require_batch_fits(config.train.batch_size, data.train.count);

  if (options.benchmark) {
    heartbeat("benchmark");  // whole timed runs (the seed job, time to 98 %) between beats
    record.benchmark = run_benchmark(options, data, gpu_present, std::cout);
    check_stdout();
    return;
  }

  std::unique_ptr<DataParallelBackend> parallel;
  std::unique_ptr<Backend> backend;
  heartbeat("cuda_init");
  if (plan.data_parallel) {
    parallel = make_data_parallel(options, config.train, data, plan, record, std::cout);
  } else {
    backend = make_backend(kind, config.train, data);
  }
  Backend& trainer = parallel ? *parallel : *backend;
  record.step_kernel = trainer.step_kernel();
  record.accuracy_floor = accuracy_floor(options);
  // The node check watches the GPUs from here to after the last step (CPU runs have none).
  std::unique_ptr<NodeCheck> node_check;
  if (kind != BackendKind::kCpu)
    node_check = std::make_unique<NodeCheck>(options, record.used, record, std::cout);
  std::cout << "Training " << model_name(config.train.model) << " ("
            << make_layout(config.train.model, config.train.hidden_units).total
            << " parameters) on " << data.train.count << " images, testing on " << data.test.count
            << ", backend " << trainer.name() << ", batch " << config.train.batch_size << ", seed "
            << config.train.seed
            << (config.train.precision == Precision::kFp32
                    ? std::string()
                    : std::string(", precision ") + precision_name(config.train.precision))
            << (record.step_kernel.empty() ? std::string() : ", step kernel " + record.step_kernel)
            << std::endl;

  ResumePoint resume = load_checkpoint_if_present(config, trainer, std::cout);
  if (parallel) resume = parallel->agree_on_start(resume);  // rank 0's checkpoint, everywhere
  const TrainResult result = run_training_loop(config, trainer, data, resume, std::cout);
  record.training = result;
  if (parallel) {
    parallel->check_replicas_agree(plan.devices);
    record.data_parallel->parameters_agree = true;
    std::cout << "Parameters identical on all " << parallel->ranks() << " GPUs after the last step"
              << std::endl;
  }
  clear_status();
  std::cout << "Final test accuracy: " << format_accuracy(result.final_accuracy) << " after "
            << result.train_steps << " training steps (" << result.seconds << " s in the loop)"
            << std::endl;
  std::cout << summary_line(result, data.origin) << std::endl;
  if (node_check) node_check->finish(record, std::cout);
  if (record.accuracy_floor > 0 && !(result.final_accuracy >= record.accuracy_floor)) {
    throw Error(ExitCode::kDiverged,
                "final test accuracy " + format_accuracy(result.final_accuracy) +
                    " is below --min_accuracy " + format_accuracy(record.accuracy_floor) +
                    ": the training did not learn (check the optimiser flags or the GPU)",
                "accuracy_below_floor");
  }
  check_stdout();
}

}  // namespace
}  // namespace mnist

int main(int argc, char** argv) {
  using mnist::ExitCode;
  const bool stdout_closed = mnist::open_closed_standard_descriptors();
  // The live progress line is for people at a terminal; logs and pipes get plain lines.
  mnist::enable_status_line(isatty(STDERR_FILENO) != 0);
  mnist::RunRecord record(argc, argv);
  mnist::Outcome outcome;
  try {
    mnist::run(argc, argv, record, stdout_closed);
  } catch (const mnist::Error& e) {
    if (!e.reason().empty()) record.reason = e.reason();
    outcome = mnist::fail("error", e.what(), e.code());
  } catch (const mnist::CudaError& e) {  // from the kernels or a CUDA resource
    outcome = mnist::fail("error", e.what(), ExitCode::kGpuUnusable);
  } catch (const std::bad_alloc&) {  // a model or batch too large for this machine's memory
    outcome = mnist::fail("error",
                          "out of host memory: lower --hidden_units, --batch_size or "
                          "--benchmark_batches",
                          ExitCode::kBadArguments);
  } catch (const std::exception& e) {
    outcome = mnist::fail("internal error", e.what(), ExitCode::kInternal);
  } catch (...) {
    outcome = mnist::fail("internal error", "an exception of unknown type", ExitCode::kInternal);
  }
  mnist::clear_status();
  return mnist::finish_run(record, outcome, std::cerr);
}
