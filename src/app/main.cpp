// mnist-train: parse the flags, check the outputs and the GPU, load the data, build a backend,
// run the TF sample's loop (or --benchmark), report. Every failure becomes one line on stderr and
// a documented exit code (see error.h and README.md); every outcome after the flags were parsed
// also becomes a verdict (result.json, --result_file, the termination message: app/report.h).
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <memory>
#include <new>
#include <stdexcept>

#include "app/backends.h"
#include "app/benchmark.h"
#include "app/cli.h"
#include "app/parallel.h"
#include "app/report.h"
#include "data/dataset.h"
#include "data/fileio.h"
#include "dist/rendezvous.h"
#include "error.h"
#include "kernels/cuda_error.h"
#include "progress.h"
#include "stop.h"
#include "train/checkpoint.h"
#include "train/loop.h"

namespace mnist {
namespace {

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

// Output folders are checked before anything long starts, so a typo fails in seconds.
void check_outputs(const Options& options) {
  if (!options.log_dir.empty() && !options.benchmark)
    ensure_writable_directory(options.log_dir, "--log_dir", ExitCode::kOutputFailed);
  if (!options.checkpoint_dir.empty())
    ensure_writable_directory(options.checkpoint_dir, "--checkpoint_dir", ExitCode::kOutputFailed);
  if (!options.benchmark_out.empty()) check_output_file(options.benchmark_out, "--benchmark_out");
  if (!options.result_file.empty()) check_output_file(options.result_file, "--result_file");
}

void require_batch_fits(int batch, int train_images) {
  if (batch > train_images) {
    throw Error(ExitCode::kBadArguments, "--batch_size " + std::to_string(batch) + " exceeds the " +
                                             std::to_string(train_images) + " training images");
  }
}

void check_stdout() {
  std::cout.flush();
  if (!std::cout)
    throw Error(ExitCode::kOutputFailed, "cannot write to stdout: full disk or closed pipe?");
}

// The run; `record` collects what the verdict reports, whatever happens.
void run(int argc, char** argv, RunRecord& record) {
  install_stop_handlers();
  const auto parsed = parse_command_line(argc, argv);
  if (!parsed) {  // --help or --version was printed
    check_stdout();
    return;
  }
  record.options = *parsed;
  const Options& options = *record.options;
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
  require_batch_fits(config.train.batch_size, options.fake_data ? kFakeTrainImages : kTrainImages);
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
  if (options.download_only) {
    record.note_data(load_dataset(data_source(options), std::cout));
    check_stdout();
    return;
  }
  check_outputs(options);
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
  const BackendKind kind = resolve_backend(requested, std::cout);
  record.backend = kind;
  const bool gpu_present = kind != BackendKind::kCpu || (options.benchmark && gpu_visible());
  const GpuPlan plan = options.benchmark ? GpuPlan{} : plan_gpus(options, kind, std::cout);
  if (gpu_present || options.backend == BackendKind::kAuto)
    record.note_gpus(gpu_present, plan.ordinals);

  const MnistData data = options.fake_data ? make_fake_data(config.train.seed)
                                           : load_dataset(data_source(options), std::cout);
  record.note_data(data);
  throw_if_stop_requested("after loading the data");
  require_batch_fits(config.train.batch_size, data.train.count);

  if (options.benchmark) {
    record.benchmark = run_benchmark(options, data, gpu_present, std::cout);
    check_stdout();
    return;
  }

  std::unique_ptr<DataParallelBackend> parallel;
  std::unique_ptr<Backend> backend;
  if (plan.data_parallel) {
    parallel = make_data_parallel(options, config.train, data, plan, record, std::cout);
  } else {
    backend = make_backend(kind, config.train, data);
  }
  Backend& trainer = parallel ? *parallel : *backend;
  record.step_kernel = trainer.step_kernel();
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
  check_stdout();
}

Outcome fail(const char* kind, const std::string& message, ExitCode code) {
  std::cout.flush();
  clear_status();
  std::cerr << "mnist-train: " << kind << ": " << message << std::endl;
  return {code, message};
}

}  // namespace
}  // namespace mnist

int main(int argc, char** argv) {
  using mnist::ExitCode;
  // The live progress line is for people at a terminal; logs and pipes get plain lines.
  mnist::enable_status_line(isatty(STDERR_FILENO) != 0);
  mnist::RunRecord record(argc, argv);
  mnist::Outcome outcome;
  try {
    mnist::run(argc, argv, record);
  } catch (const mnist::Error& e) {
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
