// The command line: everything it can set, with the TensorFlow sample's defaults, and the one
// conversion from it to what the data layer and the training loop take.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "train/config.h"

namespace mnist {

// Kubernetes' termination-message file, --termination_log's default.
inline constexpr const char* kDefaultTerminationLog = "/dev/termination-log";

struct Options {
  // Flags of the TensorFlow mnist_with_summaries.py sample, same names and defaults.
  int max_steps = 1000;
  float learning_rate = 0.001f;
  float dropout_keep = 0.9f;  // --dropout is the KEEP probability, as in the sample
  std::string data_dir = "/tmp/tensorflow/input_data";
  std::string log_dir = "/tmp/tensorflow/logs";
  bool fake_data = false;

  // Extensions.
  BackendKind backend = BackendKind::kAuto;
  ModelKind model = ModelKind::kMlp;
  int hidden_units = 500;
  int batch_size = 100;
  int eval_every = 10;
  std::uint64_t seed = 1;
  std::string dataset = "mnist";
  std::vector<std::string> mirrors;  // empty: MNIST_MIRROR, else the dataset's default list
  double download_timeout_s = 120.0;
  int download_attempts = 3;
  int summary_every = 10;   // statistics, histograms and images every N training steps
  std::string result_file;  // besides log_dir/result.json; empty: none
  // The verdict as Prometheus metrics for the node exporter's textfile collector (a *.prom name);
  // empty: none
  std::string metrics_file;
  std::string termination_log = kDefaultTerminationLog;  // the verdict line, when it exists
  std::string checkpoint_dir;                            // empty: no checkpoints
  // Periodic checkpoints: "N" training steps, "Ns" seconds or "Nm" minutes; "0" never.
  std::string checkpoint_every = "60s";
  bool cuda_graphs = true;                     // --cuda_graphs on|off
  Precision precision = Precision::kFp32;      // --precision fp32|tf32|bf16
  StepKernel step_kernel = StepKernel::kAuto;  // --step_kernel auto|fused|tiled
  // Data-parallel training (cuda backend): the GPUs of this process, and the processes of the run
  // (pods of an Indexed Job: the rank is JOB_COMPLETION_INDEX), which meet at rank 0's rendezvous.
  GpuSelection gpus;
  int world_size = 1;
  std::string rendezvous;  // HOST:PORT of rank 0; needed when world_size > 1
  // The Job's shared secret (a mounted Kubernetes Secret); needed when world_size > 1, which reads
  // and checks it at parsing; ignored (never read) in a world of one, like --rendezvous.
  std::string rendezvous_secret_file;
  double rendezvous_timeout_s = 300.0;
  // Pass criteria of the node check (app/node_check.h; the verdict's checks).
  double min_accuracy = -1.0;    // final test accuracy a run must reach; < 0: auto (accuracy_floor)
  double min_speed_ratio = 0.5;  // of each GPU's FP32 and memory promise (gpu/speed_probe.h)
  double min_sibling_ratio = 0.8;  // of the median of the other GPUs of its model in this process
  std::vector<std::string> warn_only;  // checks whose failure only warns
  double stall_timeout_s = 120.0;      // no progress for this long: exit 4, "stalled"; 0: never
  bool download_only = false;          // fetch and verify the data into data_dir, then exit
  bool dry_run = false;                // validate the flags, print the configuration, exit

  // --benchmark mode.
  bool benchmark = false;
  std::vector<int> benchmark_batches = {100, 1024, 8192};
  std::vector<BackendKind> benchmark_backends;  // empty: cuda,cublas with a GPU, else cpu
  // The step table's precisions for GPU backends; empty: fp32,tf32,bf16 where the GPU has tensor
  // cores (compute capability 8.0+), else fp32. CPU rows are fp32.
  std::vector<Precision> benchmark_precisions;
  int benchmark_steps = 200;
  std::string benchmark_out;
};

// Parses argv. Every number must be finite and within the range --help shows; a flag that takes a
// value never takes the next flag as it. Throws Error(kBadArguments) with one readable line on any
// fault (unknown flag, with the closest known one; missing or bad value), and nothing else,
// whatever argv holds. Returns nullopt when --help or --version was printed (the caller exits 0).
std::optional<Options> parse_command_line(int argc, const char* const* argv);

// The run the flags describe (the trainer, --benchmark and the tests all build runs this way).
// Throws Error(kBadArguments) when checkpoint_every is malformed (only Options built by hand can
// hold such a value: parse_command_line refuses it).
RunConfig run_config(const Options& options);

// Where the flags say the data comes from.
DataSource data_source(const Options& options);

// The final test accuracy the run must reach (0: none). --min_accuracy when given; else, for the
// sample's own run and longer (real MNIST, at least 500 iterations), kSeedAccuracyFloor; else none
// (a short or synthetic run has no accuracy it must reach).
constexpr double kSeedAccuracyFloor = 0.90;
double accuracy_floor(const Options& options);

}  // namespace mnist
