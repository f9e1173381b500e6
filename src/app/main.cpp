// mnist-train: parse the flags, check the GPU, load the data, build a backend, run the TF sample's
// loop (or --benchmark), report. Every failure becomes one line on stderr and a documented exit
// code (see error.h and README.md).
#include <csignal>
#include <iostream>

#include "app/backends.h"
#include "app/benchmark.h"
#include "app/cli.h"
#include "data/dataset.h"
#include "error.h"
#include "kernels/cuda_error.h"
#include "train/checkpoint.h"
#include "train/loop.h"

namespace mnist {
namespace {

void on_sigterm(int) { g_stop_requested.store(true); }

int run(int argc, char** argv) {
  const auto parsed = parse_command_line(argc, argv);
  if (!parsed) return 0;
  const Options& options = *parsed;
  const RunConfig config = run_config(options);
  if (options.dry_run) {
    std::cout << "flags OK: backend " << backend_name(options.backend) << ", model "
              << model_name(config.train.model) << ", max_steps " << config.max_steps << ", batch "
              << config.train.batch_size << ", data "
              << (options.fake_data ? "synthetic" : options.dataset + " in " + options.data_dir)
              << std::endl;
    return 0;
  }
  std::signal(SIGTERM, on_sigterm);
  if (options.download_only) {
    load_dataset(data_source(options), std::cout);
    return 0;
  }

  // The GPU is checked before any download, so a broken node fails in seconds.
  const BackendKind kind = resolve_backend(options.backend, std::cout);

  const MnistData data = options.fake_data ? make_fake_data(config.train.seed)
                                           : load_dataset(data_source(options), std::cout);
  if (config.train.batch_size > data.train.count) {
    throw Error(ExitCode::kBadArguments, "--batch_size " + std::to_string(config.train.batch_size) +
                                             " exceeds the " + std::to_string(data.train.count) +
                                             " training images");
  }

  if (options.benchmark) {
    run_benchmark(options, data, kind != BackendKind::kCpu || gpu_visible(), std::cout);
    return 0;
  }

  auto backend = make_backend(kind, config.train, data);
  std::cout << "Training " << model_name(config.train.model) << " ("
            << make_layout(config.train.model, config.train.hidden_units).total
            << " parameters) on " << data.train.count << " images, testing on " << data.test.count
            << ", backend " << backend->name() << ", batch " << config.train.batch_size << ", seed "
            << config.train.seed << std::endl;

  const std::int64_t first = load_checkpoint_if_present(config, *backend, std::cout);
  const TrainResult result = run_training_loop(config, *backend, data, first, std::cout);
  std::cout << "Final test accuracy: " << format_accuracy(result.final_accuracy) << " after "
            << result.train_steps << " training steps (" << result.seconds << " s in the loop)"
            << std::endl;
  return 0;
}

int fail(const char* kind, const std::exception& e, ExitCode code) {
  std::cout.flush();
  std::cerr << "mnist-train: " << kind << ": " << e.what() << std::endl;
  return static_cast<int>(code);
}

}  // namespace
}  // namespace mnist

int main(int argc, char** argv) {
  using mnist::ExitCode;
  try {
    return mnist::run(argc, argv);
  } catch (const mnist::Error& e) {
    return mnist::fail("error", e, e.code());
  } catch (const mnist::CudaError& e) {  // from the kernels or a CUDA resource
    return mnist::fail("error", e, ExitCode::kGpuUnusable);
  } catch (const std::exception& e) {
    return mnist::fail("internal error", e, ExitCode::kInternal);
  }
}
