// mnist-train: load data, pick a backend, run the TF sample's loop, report. Every failure becomes
// one line on stderr and a documented exit code (see error.h and README.md).
#include <unistd.h>

#include <csignal>
#include <iostream>

#include "backends.h"
#include "benchmark.h"
#include "dataset.h"
#include "error.h"
#include "gpu_device.h"
#include "model.h"
#include "options.h"
#include "trainer.h"

namespace mnist {
namespace {

void on_sigterm(int) { g_stop_requested.store(true); }

void validate(const Options& o) {
  if (o.fake_data) return;
  if (o.batch_size > 55000)
    throw Error(ExitCode::kBadArguments, "--batch_size must not exceed the 55000 training images");
}

MnistData load_real_data(const Options& options) {
  FetchPolicy policy;
  const DatasetSpec spec = builtin_dataset_spec(options.dataset);
  policy.mirrors = resolve_mirrors(options.mirrors, spec.mirrors);
  policy.timeout_s = options.download_timeout_s;
  policy.attempts = options.download_attempts;
  policy.show_progress = isatty(STDERR_FILENO) != 0;
  return load_dataset(spec, options.data_dir, policy, std::cout);
}

int run(int argc, char** argv) {
  const auto parsed = parse_command_line(argc, argv);
  if (!parsed) return 0;
  const Options& options = *parsed;
  validate(options);
  if (options.dry_run) {
    std::cout << "flags OK: backend " << backend_name(options.backend) << ", model "
              << model_name(options.model) << ", max_steps " << options.max_steps << ", batch "
              << options.batch_size << ", data "
              << (options.fake_data ? "synthetic" : options.dataset + " in " + options.data_dir)
              << std::endl;
    return 0;
  }
  std::signal(SIGTERM, on_sigterm);
  if (options.download_only) {
    load_real_data(options);
    return 0;
  }

  // The GPU is checked before any download, so a broken node fails in seconds.
  const BackendKind kind = resolve_backend(options.backend, std::cout);

  const MnistData data = options.fake_data ? make_fake_data(options.seed) : load_real_data(options);
  if (options.batch_size > data.train.count) {
    throw Error(ExitCode::kBadArguments, "--batch_size " + std::to_string(options.batch_size) +
                                             " exceeds the " + std::to_string(data.train.count) +
                                             " training images");
  }

  if (options.benchmark) {
    run_benchmark(options, data, kind != BackendKind::kCpu || probe_gpus().device_count > 0,
                  std::cout);
    return 0;
  }

  TrainConfig config;
  config.model = options.model;
  config.hidden_units = options.hidden_units;
  config.batch_size = options.batch_size;
  config.learning_rate = options.learning_rate;
  config.keep_prob = options.model == ModelKind::kMlp ? options.dropout_keep : 1.0f;
  config.seed = options.seed;
  config.cuda_graphs = options.cuda_graphs;
  const ModelLayout layout = make_layout(config.model, config.hidden_units);
  auto backend = make_backend(kind, config, data, initial_parameters(layout, config.seed));
  std::cout << "Training " << model_name(config.model) << " (" << layout.total << " parameters) on "
            << data.train.count << " images, testing on " << data.test.count << ", backend "
            << backend->name() << ", batch " << config.batch_size << ", seed " << config.seed
            << std::endl;

  const std::int64_t first = load_checkpoint_if_present(options, *backend, std::cout);
  const TrainResult result = run_training_loop(options, *backend, data, first, std::cout);
  std::cout << "Final test accuracy: " << format_accuracy(result.final_accuracy) << " after "
            << result.train_steps << " training steps (" << result.seconds << " s in the loop)"
            << std::endl;
  return 0;
}

}  // namespace
}  // namespace mnist

int main(int argc, char** argv) {
  try {
    return mnist::run(argc, argv);
  } catch (const mnist::Error& e) {
    std::cout.flush();
    std::cerr << "mnist-train: error: " << e.what() << std::endl;
    return static_cast<int>(e.code());
  } catch (const std::exception& e) {
    std::cout.flush();
    std::cerr << "mnist-train: internal error: " << e.what() << std::endl;
    return 1;
  }
}
