// The whole training step and evaluation on the GPU against the CPU reference.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "app/backends.h"
#include "kernels/common/philox.h"
#include "kernels/gemm.h"
#include "support/dropout_steps.h"
#include "support/gpu_test_util.h"
#include "train/checkpoint.h"
#include "train/cpu_backend.h"
#include "train/epochs.h"
#include "train/loop.h"

namespace mnist {
namespace {

using dropout_test::expect_fresh_masks_each_step;
using dropout_test::parameters_passing_every_relu;

using gpu_test::relative_drift;

const MnistData& fake() {
  static const MnistData data = make_fake_data(3);
  return data;
}

TrainConfig config(ModelKind model, int batch, float keep,
                   StepKernel step_kernel = StepKernel::kAuto) {
  TrainConfig c;
  c.step_kernel = step_kernel;
  c.model = model;
  c.batch_size = batch;
  c.keep_prob = keep_prob_for(model, keep);
  c.seed = 77;
  return c;
}

// The CPU reference next to one GPU backend (cuda or cublas), from identical parameters.
struct Pair {
  BackendKind kind_;
  CpuBackend cpu;
  std::unique_ptr<Backend> gpu_owner;
  Backend& gpu;
  EpochFeeder cpu_epochs, gpu_epochs;  // the training loop's feeder, one per backend
  Pair(BackendKind kind, const TrainConfig& c, std::uint64_t init_seed)
      : kind_(kind),
        cpu(c, fake(), initial_parameters(make_layout(c.model, c.hidden_units), init_seed)),
        gpu_owner(make_backend(
            kind, c, fake(), initial_parameters(make_layout(c.model, c.hidden_units), init_seed))),
        gpu(*gpu_owner),
        cpu_epochs(cpu, c.seed, c.batch_size, fake().train.count),
        gpu_epochs(gpu, c.seed, c.batch_size, fake().train.count) {
    EXPECT_EQ(gpu.name(), backend_name(kind_)) << "make_backend built the wrong backend";
  }
  void step() {
    cpu_epochs.before_step();
    gpu_epochs.before_step();
    cpu.train_step();
    gpu.train_step();
  }
};

// Every test runs for both GPU backends: ours and the cuBLASLt baseline.
class GpuBackend : public ::testing::TestWithParam<BackendKind> {};
INSTANTIATE_TEST_SUITE_P(Backends, GpuBackend,
                         ::testing::Values(BackendKind::kCuda, BackendKind::kCublas),
                         [](const ::testing::TestParamInfo<BackendKind>& p) {
                           return std::string(backend_name(p.param));
                         });

// Trains both backends from identical parameters for `steps` steps, starting at `first_step`.
void expect_same_training(BackendKind kind, ModelKind model, int batch, float keep, int steps,
                          std::int64_t first_step = 0, StepKernel step_kernel = StepKernel::kAuto) {
  const TrainConfig c = config(model, batch, keep, step_kernel);
  Pair pair(kind, c, 4);
  TrainState initial = pair.cpu.state();
  initial.step = first_step;
  pair.cpu.set_state(initial);
  pair.gpu.set_state(initial);
  const auto start = initial.params;
  for (int i = 0; i < steps; ++i) {
    pair.step();
    ASSERT_NEAR(pair.gpu.last_loss(), pair.cpu.last_loss(),
                2e-4 * std::fabs(pair.cpu.last_loss()) + 1e-6)
        << "step " << i;
  }
  const TrainState g = pair.gpu.state(), h = pair.cpu.state();
  EXPECT_EQ(g.step, first_step + steps);
  // fp32 sums in another order differ in the last bits; Adam's normalised update can turn a
  // near-zero gradient's rounding into a different update, so compare relative to the movement.
  EXPECT_LT(relative_drift(g.params, h.params, start), 2e-3);
  double max_diff = 0;
  for (std::size_t i = 0; i < h.params.size(); ++i)
    max_diff = std::max(max_diff, double(std::fabs(g.params[i] - h.params[i])));
  EXPECT_LT(max_diff, 2.5e-3 * steps * c.learning_rate / 0.001);
  const int cpu_correct = pair.cpu.evaluate_test(), gpu_correct = pair.gpu.evaluate_test();
  EXPECT_NEAR(gpu_correct, cpu_correct, 3);
}

TEST_P(GpuBackend, MlpTrainingStepsMatchTheCpuWithDropout) {
  REQUIRE_GPU();
  expect_same_training(GetParam(), ModelKind::kMlp, 100, 0.9f, 8);
}

TEST_P(GpuBackend, MlpWithoutDropoutAndAnOddBatch) {
  REQUIRE_GPU();
  expect_same_training(GetParam(), ModelKind::kMlp, 7, 1.0f, 8);
}

// Small batches take the fused step by default (test_fused_step.cpp); the tiled one still runs
// them on request (--step_kernel tiled) and must match too.
TEST_P(GpuBackend, TiledStepAtSmallBatchesMatchesTheCpu) {
  REQUIRE_GPU();
  expect_same_training(GetParam(), ModelKind::kMlp, 100, 0.9f, 8, 0, StepKernel::kTiled);
  expect_same_training(GetParam(), ModelKind::kMlp, 7, 1.0f, 8, 0, StepKernel::kTiled);
}

TEST_P(GpuBackend, SoftmaxMatchesTheCpu) {
  REQUIRE_GPU();
  expect_same_training(GetParam(), ModelKind::kSoftmax, 257, 1.0f, 8);
}

TEST_P(GpuBackend, BatchesStraddlingAnEpochBoundaryMatchTheCpu) {
  REQUIRE_GPU();
  // 10,000 training images in batches of 300: step 33 takes the last 100 of epoch 0 and the
  // first 200 of epoch 1.
  expect_same_training(GetParam(), ModelKind::kMlp, 300, 0.9f, 4, 31);
}

TEST_P(GpuBackend, LargeBatchSplitReductionMatchesTheCpu) {
  REQUIRE_GPU();
  expect_same_training(GetParam(), ModelKind::kMlp, 2048, 0.9f, 3);
}

TEST_P(GpuBackend, EvaluationMatchesTheCpuOnTheSameParameters) {
  REQUIRE_GPU();
  const TrainConfig c = config(ModelKind::kMlp, 100, 0.9f);
  Pair pair(GetParam(), c, 8);
  for (int i = 0; i < 20; ++i) {
    pair.cpu_epochs.before_step();
    pair.cpu.train_step();
  }
  pair.gpu.set_state(pair.cpu.state());
  EXPECT_EQ(pair.gpu.steps_taken(), 20);
  EXPECT_NEAR(pair.gpu.evaluate_test(), pair.cpu.evaluate_test(), 2);
  EXPECT_EQ(pair.gpu.state().params, pair.cpu.state().params);
}

// An evaluation of 10,000 images (the real test set's size) on parameters the CPU trained: on a
// GPU where that many rows overflow whole waves of large tiles, ours runs in two products
// (kernels::forward_wave_rows); every row must still be counted, and counted alike.
TEST_P(GpuBackend, EvaluationOfTenThousandRowsMatchesTheCpu) {
  REQUIRE_GPU();
  MnistData data = make_fake_data(3);
  data.test.count = 10000;  // the first 10,000 training images, as a test set
  data.test.images.assign(data.train.images.begin(),
                          data.train.images.begin() + std::size_t(10000) * kImagePixels);
  data.test.labels.assign(data.train.labels.begin(), data.train.labels.begin() + 10000);
  const TrainConfig c = config(ModelKind::kMlp, 100, 0.9f);
  const auto start = initial_parameters(make_layout(c.model, c.hidden_units), 8);
  CpuBackend cpu(c, data, start);
  EpochFeeder epochs(cpu, c.seed, c.batch_size, data.train.count);
  for (int i = 0; i < 30; ++i) {
    epochs.before_step();
    cpu.train_step();
  }
  auto gpu = make_backend(GetParam(), c, data, start);
  gpu->set_state(cpu.state());
  if (GetParam() == BackendKind::kCuda) {
    std::printf("  forward_wave_rows(10000, %d) = %d on this GPU\n", c.hidden_units,
                kernels::forward_wave_rows(10000, c.hidden_units));
  }
  const Evaluation g = gpu->evaluate(EvalSplit::kTest, true),
                   h = cpu.evaluate(EvalSplit::kTest, true);
  EXPECT_NEAR(g.correct, h.correct, 3);
  EXPECT_NEAR(g.cross_entropy, h.cross_entropy, 1e-4 * std::fabs(h.cross_entropy));
}

// Each step's own mask, the Philox stream's, and 1 / keep on the kept units forward and backward,
// on values: the GPU kernels share the mask and the scale's code with the CPU reference, so a
// comparison with the CPU cannot show them wrong. Both step kernels of the cuda backend.
TEST_P(GpuBackend, EachTrainingStepDrawsItsOwnMaskScaledByOneOverKeep) {
  REQUIRE_GPU();
  const std::vector<StepKernel> step_kernels =
      GetParam() == BackendKind::kCuda
          ? std::vector<StepKernel>{StepKernel::kFused, StepKernel::kTiled}
          : std::vector<StepKernel>{StepKernel::kAuto};
  for (StepKernel step_kernel : step_kernels) {
    SCOPED_TRACE(step_kernel_name(step_kernel));
    TrainConfig c = config(ModelKind::kMlp, 1, 0.5f, step_kernel);
    c.hidden_units = 512;
    auto backend = make_backend(
        GetParam(), c, fake(), parameters_passing_every_relu(make_layout(c.model, c.hidden_units)));
    if (GetParam() == BackendKind::kCuda) {
      EXPECT_EQ(backend->step_kernel(), step_kernel_name(step_kernel));
    }
    expect_fresh_masks_each_step(*backend, c, fake());
  }
}

TEST_P(GpuBackend, TrainingIsBitwiseReproducible) {
  REQUIRE_GPU();
  auto run = [this] {
    const TrainConfig c = config(ModelKind::kMlp, 100, 0.9f);
    auto b = make_backend(GetParam(), c, fake(),
                          initial_parameters(make_layout(c.model, c.hidden_units), 1));
    EpochFeeder epochs(*b, c.seed, c.batch_size, fake().train.count);
    for (int i = 0; i < 10; ++i) {
      epochs.before_step();
      b->train_step();
    }
    return b->state().params;
  };
  EXPECT_EQ(run(), run());
}

// The training loop on the GPU, straight through or stopped and resumed through checkpoint files:
// the same parameters to the bit, and the same accuracy lines.
TEST_P(GpuBackend, ResumingThroughACheckpointIsExact) {
  REQUIRE_GPU();
  const auto dir = std::filesystem::temp_directory_path() /
                   ("mnist_gpu_resume_" + std::to_string(::getpid()) + backend_name(GetParam()));
  std::filesystem::remove_all(dir);
  RunConfig run;
  run.train = config(ModelKind::kMlp, 100, 0.9f);
  run.fake_data = true;
  auto train = [&](int max_steps, const std::string& checkpoint_dir, std::string* log) {
    RunConfig r = run;
    r.max_steps = max_steps;
    r.checkpoint_dir = checkpoint_dir;
    auto backend = make_backend(GetParam(), r.train, fake());
    std::ostringstream out;
    const ResumePoint resume = load_checkpoint_if_present(r, *backend, out);
    run_training_loop(r, *backend, fake(), resume, out);
    if (log) *log = out.str();
    return backend->state().params;
  };
  std::string straight_log, resumed_log;
  const auto straight = train(120, "", &straight_log);
  train(45, dir.string(), nullptr);
  const auto resumed = train(120, dir.string(), &resumed_log);
  EXPECT_EQ(resumed, straight);
  const auto tail = straight_log.substr(straight_log.find("Accuracy at step 50:"));
  EXPECT_NE(resumed_log.find(tail), std::string::npos) << resumed_log;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace mnist
