// What a run is configured with, independent of the command line: the backend and model kinds
// (each with its one name table), what a backend needs (TrainConfig), and what the loop needs on
// top (RunConfig). app/cli.h's run_config() is the one conversion from the flags to a RunConfig.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kernels/common/precision.h"

namespace mnist {

enum class BackendKind { kAuto, kCuda, kCublas, kCpu };
enum class ModelKind { kMlp, kSoftmax };
// How the cuda backend runs a training step (--step_kernel): auto picks the fused whole-step
// kernel (kernels/fused_step.h) where it applies (mlp, fp32, one GPU, batch <= 128), else tiled.
enum class StepKernel { kAuto, kFused, kTiled };

template <class Enum>
struct NamedValue {
  Enum value;
  const char* name;
};

// The one name table of each enum: flags, log lines, checkpoints, tests and --benchmark use them.
inline constexpr NamedValue<BackendKind> kBackendNames[] = {{BackendKind::kAuto, "auto"},
                                                            {BackendKind::kCuda, "cuda"},
                                                            {BackendKind::kCublas, "cublas"},
                                                            {BackendKind::kCpu, "cpu"}};
inline constexpr NamedValue<ModelKind> kModelNames[] = {{ModelKind::kMlp, "mlp"},
                                                        {ModelKind::kSoftmax, "softmax"}};
inline constexpr NamedValue<StepKernel> kStepKernelNames[] = {
    {StepKernel::kAuto, "auto"}, {StepKernel::kFused, "fused"}, {StepKernel::kTiled, "tiled"}};
inline constexpr NamedValue<Precision> kPrecisionNames[] = {
    {Precision::kFp32, "fp32"}, {Precision::kTf32, "tf32"}, {Precision::kBf16, "bf16"}};

template <class Enum, std::size_t N>
const char* name_in(const NamedValue<Enum> (&table)[N], Enum value) {
  for (const auto& entry : table)
    if (entry.value == value) return entry.name;
  return "?";
}
template <class Enum, std::size_t N>
std::optional<Enum> value_in(const NamedValue<Enum> (&table)[N], const std::string& name) {
  for (const auto& entry : table)
    if (name == entry.name) return entry.value;
  return std::nullopt;
}
template <class Enum, std::size_t N>
std::vector<std::string> names_in(const NamedValue<Enum> (&table)[N]) {
  std::vector<std::string> names;
  for (const auto& entry : table) names.emplace_back(entry.name);
  return names;
}

inline const char* backend_name(BackendKind kind) { return name_in(kBackendNames, kind); }
inline const char* model_name(ModelKind kind) { return name_in(kModelNames, kind); }
inline const char* precision_name(Precision p) { return name_in(kPrecisionNames, p); }
inline const char* step_kernel_name(StepKernel k) { return name_in(kStepKernelNames, k); }

// Which GPUs a run trains on (--gpus): every visible one, the first N, or a list of CUDA ordinals.
// Resolved against the devices a process sees by resolve_gpus (gpu/gpu_check.h).
struct GpuSelection {
  enum class Kind { kAll, kFirst, kList };
  Kind kind = Kind::kAll;
  int first = 0;          // kFirst: how many
  std::vector<int> list;  // kList: distinct ordinals, in the order given
  std::string text = "all";
};

// What a backend needs to build the model and take steps.
struct TrainConfig {
  ModelKind model = ModelKind::kMlp;
  int hidden_units = 500;
  int batch_size = 100;
  float learning_rate = 0.001f;
  float keep_prob = 0.9f;   // 1 for the softmax model (no hidden layer to drop)
  std::uint64_t seed = 1;   // initialisation, shuffling and dropout
  bool cuda_graphs = true;  // GPU backends: replay a captured graph per step (off: launch eagerly)
  // The arithmetic of the wide products (GPU backends; common/precision.h). The CPU reference is
  // fp32 only.
  Precision precision = Precision::kFp32;
  StepKernel step_kernel = StepKernel::kAuto;  // the cuda backend's step (see StepKernel)
};

// The hidden layer's keep probability for `model`: --dropout for the mlp; the softmax model has no
// hidden layer to drop, so 1.
inline float keep_prob_for(ModelKind model, float dropout_keep) {
  return model == ModelKind::kMlp ? dropout_keep : 1.0f;
}

// A whole run of the training loop.
struct RunConfig {
  TrainConfig train;
  int max_steps = 1000;
  int eval_every = 10;
  std::string log_dir;         // empty: no summaries
  int summary_every = 10;      // statistics, histograms and images every N training steps
  std::string flags_text;      // the run's flags (Markdown), written as a text summary
  std::string checkpoint_dir;  // empty: no checkpoints
  // Periodic checkpoints while training (besides the one at the end and on a stop request): every
  // checkpoint_every_steps iterations and every checkpoint_every_seconds of wall time (0: never).
  std::int64_t checkpoint_every_steps = 0;
  double checkpoint_every_seconds = 60.0;
  // Which data the run trains on; a checkpoint records it so a resume cannot mix datasets.
  std::string dataset = "mnist";
  bool fake_data = false;
};

}  // namespace mnist
