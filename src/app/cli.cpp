#include "app/cli.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "error.h"

namespace mnist {

std::optional<Options> parse_command_line(int argc, const char* const* argv) {
  Options o;
  CLI::App app{
      "mnist-train: trains an MNIST classifier with hand-written CUDA kernels and logs test "
      "accuracy.\nA drop-in replacement for the TensorFlow mnist_with_summaries.py demo image: "
      "same flags, defaults and log lines.",
      "mnist-train"};
  app.get_formatter()->column_width(34);

  app.add_option("--max_steps", o.max_steps,
                 "Loop iterations (every 10th evaluates instead of training)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--learning_rate", o.learning_rate, "Adam step size")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--dropout", o.dropout_keep, "KEEP probability of the hidden layer's dropout")
      ->capture_default_str()
      ->check(CLI::Range(0.0f, 1.0f))
      ->check([](const std::string& s) { return std::stof(s) > 0 ? "" : "must be > 0"; });
  app.add_option("--data_dir", o.data_dir, "Where the four .gz files are cached")
      ->capture_default_str();
  app.add_option("--log_dir", o.log_dir, "Summaries (train/ and test/ subfolders); empty: none")
      ->capture_default_str();
  app.add_flag("--fake_data", o.fake_data, "Synthetic data, no download");

  std::string backend = "auto", model = "mlp";
  app.add_option(
         "--backend", backend,
         "auto (cuda when a GPU is visible, else cpu with a warning), cuda (hand-written "
         "kernels; exits 4 without a usable GPU), cublas (cuBLAS/cuDNN baseline; same exit 4), "
         "cpu (reference)")
      ->capture_default_str()
      ->check(CLI::IsMember(names_in(kBackendNames)));
  app.add_option("--model", model, "mlp (784-hidden-10, ReLU, dropout) or softmax (784-10)")
      ->capture_default_str()
      ->check(CLI::IsMember(names_in(kModelNames)));
  app.add_option("--hidden_units", o.hidden_units, "Hidden layer width (mlp)")
      ->capture_default_str()
      ->check(CLI::Range(1, 65536));
  app.add_option("--batch_size", o.batch_size, "Training batch size")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--eval_every", o.eval_every, "Evaluate on the test set when step % N == 0")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 30));
  app.add_option("--seed", o.seed, "Seed for initialisation, shuffling and dropout")
      ->capture_default_str();
  app.add_option("--dataset", o.dataset, "mnist or fashion-mnist (same format, own mirrors)")
      ->capture_default_str()
      ->check(CLI::IsMember({"mnist", "fashion-mnist"}));
  app.add_option("--mirror", o.mirrors,
                 "Base URL the four file names are appended to (repeatable, tried in order; "
                 "http(s):// or file://). Replaces MNIST_MIRROR and the built-in list");
  app.add_option("--download_timeout", o.download_timeout_s, "Seconds per download attempt")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--download_attempts", o.download_attempts,
                 "Attempts per mirror (back-off between)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  app.add_option("--checkpoint_dir", o.checkpoint_dir,
                 "Save parameters here on SIGTERM and at the end; resume from it when present");

  std::string graphs = "on";
  app.add_option(
         "--cuda_graphs", graphs,
         "GPU backends replay each step and evaluation as a captured CUDA graph (on), or launch "
         "each kernel eagerly (off: slower; for profilers and comparisons)")
      ->capture_default_str()
      ->check(CLI::IsMember({"on", "off"}));
  app.add_flag(
      "--download_only", o.download_only,
      "Download and verify the dataset into --data_dir, then exit (prepares air-gapped mirrors "
      "and container images)");
  app.add_flag("--dry_run", o.dry_run,
               "Check the flags, print the configuration and exit 0 (nothing else runs)");
  app.add_flag(
      "--benchmark", o.benchmark,
      "Measure instead of training: step latency and throughput per backend and batch size, the "
      "seed job, time to 98% accuracy, peak device memory, our GEMMs vs cuBLAS");
  app.add_option("--benchmark_batches", o.benchmark_batches, "Batch sizes to time")
      ->delimiter(',')
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  std::vector<std::string> benchmark_backends;
  std::vector<std::string> concrete_backends;  // every backend but "auto"
  for (const auto& entry : kBackendNames)
    if (entry.value != BackendKind::kAuto) concrete_backends.emplace_back(entry.name);
  app.add_option("--benchmark_backends", benchmark_backends,
                 "Backends to time (default: cuda,cublas with a GPU, else cpu)")
      ->delimiter(',')
      ->check(CLI::IsMember(concrete_backends));
  app.add_option("--benchmark_steps", o.benchmark_steps,
                 "Timed steps per configuration (after 20 warm-up steps)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 24));
  app.add_option("--benchmark_out", o.benchmark_out, "Also write the results as JSON to this file");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return std::nullopt;
  } catch (const CLI::ParseError& e) {
    throw Error(ExitCode::kBadArguments, std::string(e.what()) + " (see --help)");
  }
  o.backend = *value_in(kBackendNames, backend);
  o.model = *value_in(kModelNames, model);
  o.cuda_graphs = graphs == "on";
  for (const std::string& name : benchmark_backends)
    o.benchmark_backends.push_back(*value_in(kBackendNames, name));
  return o;
}

RunConfig run_config(const Options& o) {
  RunConfig run;
  run.train.model = o.model;
  run.train.hidden_units = o.hidden_units;
  run.train.batch_size = o.batch_size;
  run.train.learning_rate = o.learning_rate;
  run.train.keep_prob = o.model == ModelKind::kMlp ? o.dropout_keep : 1.0f;
  run.train.seed = o.seed;
  run.train.cuda_graphs = o.cuda_graphs;
  run.max_steps = o.max_steps;
  run.eval_every = o.eval_every;
  run.log_dir = o.log_dir;
  run.checkpoint_dir = o.checkpoint_dir;
  run.dataset = o.dataset;
  run.fake_data = o.fake_data;
  return run;
}

DataSource data_source(const Options& o) {
  DataSource source;
  source.dataset = o.dataset;
  source.data_dir = o.data_dir;
  source.mirror_flags = o.mirrors;
  source.timeout_s = o.download_timeout_s;
  source.attempts = o.download_attempts;
  source.show_progress = isatty(STDERR_FILENO) != 0;
  return source;
}

}  // namespace mnist
