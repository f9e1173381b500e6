// The fused whole-step kernel (kernels/fused_step.h): when the cuda backend picks it, and its
// steps against the CPU reference and against the tiled step, over the shapes it must handle
// (batches of 1 to 128 rows, hidden layers that do not fill its blocks evenly, 8 units per block,
// a batch straddling two epochs), bitwise reproducibility, and the refusal where it cannot run.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "error.h"
#include "gpu/cuda_backend.h"
#include "kernels/fused_step.h"
#include "support/gpu_test_util.h"
#include "train/cpu_backend.h"
#include "train/epochs.h"

namespace mnist {
namespace {

using gpu_test::relative_drift;

const MnistData& fake() {
  static const MnistData data = make_fake_data(8);
  return data;
}

TrainConfig config(int batch, float keep, int hidden = 500, StepKernel kernel = StepKernel::kAuto) {
  TrainConfig c;
  c.model = ModelKind::kMlp;
  c.hidden_units = hidden;
  c.batch_size = batch;
  c.keep_prob = keep;
  c.seed = 123;
  c.step_kernel = kernel;
  return c;
}

std::vector<float> initial(const TrainConfig& c) {
  return initial_parameters(make_layout(c.model, c.hidden_units), 9);
}

// Whether this GPU runs the fused step at this shape (an H200 runs all of this file's; GPUs with
// less shared memory per block or fewer SMs run fewer).
bool fuses(int batch, int hidden) {
  return kernels::plan_fused_step(batch, hidden).unsupported == nullptr;
}

#define REQUIRE_FUSED(batch, hidden)                                                            \
  if (!fuses(batch, hidden))                                                                    \
  GTEST_SKIP() << "this GPU does not fuse batch " << (batch) << ", hidden " << (hidden) << ": " \
               << kernels::plan_fused_step(batch, hidden).unsupported

TEST(FusedStep, AutoPicksItForSmallFp32MlpBatches) {
  REQUIRE_GPU();
  const auto kernel_of = [](TrainConfig c) {
    return CudaBackend(c, fake(), initial(c)).step_kernel();
  };
  for (int batch : {1, 100, kFusedMaxBatch})
    EXPECT_EQ(kernel_of(config(batch, 0.9f)), fuses(batch, 500) ? "fused" : "tiled") << batch;
  EXPECT_EQ(kernel_of(config(kFusedMaxBatch + 1, 0.9f)), "tiled");
  EXPECT_EQ(kernel_of(config(100, 0.9f, 500, StepKernel::kTiled)), "tiled");
  TrainConfig tf32 = config(100, 0.9f);
  tf32.precision = Precision::kTf32;
  EXPECT_EQ(kernel_of(tf32), "tiled");
  TrainConfig softmax = config(100, 1.0f);
  softmax.model = ModelKind::kSoftmax;
  EXPECT_EQ(kernel_of(softmax), "tiled");
}

TEST(FusedStep, ForcedWhereItCannotRunIsABadCommandLine) {
  REQUIRE_GPU();
  const auto expect_refused = [](TrainConfig c) {
    try {
      CudaBackend backend(c, fake(), initial(c));
      ADD_FAILURE() << "built a fused backend for batch " << c.batch_size;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ExitCode::kBadArguments);
      EXPECT_NE(std::string(e.what()).find("--step_kernel fused"), std::string::npos) << e.what();
    }
  };
  expect_refused(config(kFusedMaxBatch + 1, 0.9f, 500, StepKernel::kFused));
  TrainConfig bf16 = config(100, 0.9f, 500, StepKernel::kFused);
  bf16.precision = Precision::kBf16;
  expect_refused(bf16);
  TrainConfig replica = config(100, 0.9f, 500, StepKernel::kFused);  // refused on any GPU
  try {
    CudaBackend shard(replica, fake(), initial(replica), shard_of(100, 0, 2));
    ADD_FAILURE() << "built a fused data-parallel replica";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kBadArguments);
  }
}

// How far a GPU training ended from the CPU reference's.
struct Distance {
  double params = 0, m = 0, v = 0, max_param = 0;
};

// `steps` steps of the cuda backend with `kernel` from step `first_step`, against the CPU
// reference: the loss of every step (as test_backends.cpp bounds it), then the distances.
Distance train_against_cpu(TrainConfig c, StepKernel kernel, int steps, std::int64_t first_step) {
  c.step_kernel = kernel;
  CpuBackend cpu(c, fake(), initial(c));
  CudaBackend gpu(c, fake(), initial(c));
  EXPECT_EQ(gpu.step_kernel(), kernel == StepKernel::kFused ? "fused" : "tiled");
  TrainState start = cpu.state();
  start.step = first_step;
  cpu.set_state(start);
  gpu.set_state(start);
  EpochFeeder cpu_epochs(cpu, c.seed, c.batch_size, fake().train.count);
  EpochFeeder gpu_epochs(gpu, c.seed, c.batch_size, fake().train.count);
  for (int i = 0; i < steps; ++i) {
    cpu_epochs.before_step();
    gpu_epochs.before_step();
    cpu.train_step();
    gpu.train_step();
    EXPECT_NEAR(gpu.last_loss(), cpu.last_loss(), 2e-4 * std::fabs(cpu.last_loss()) + 1e-6)
        << step_kernel_name(kernel) << " step " << i;
  }
  const TrainState g = gpu.state(), h = cpu.state();
  EXPECT_EQ(g.step, first_step + steps);
  EXPECT_NEAR(gpu.evaluate_test(), cpu.evaluate_test(), 3) << step_kernel_name(kernel);
  Distance d;
  d.params = relative_drift(g.params, h.params, start.params);
  d.m = gpu_test::relative_error(g.adam_m, h.adam_m);
  d.v = gpu_test::relative_error(g.adam_v, h.adam_v);
  for (std::size_t i = 0; i < h.params.size(); ++i)
    d.max_param = std::max(d.max_param, double(std::fabs(g.params[i] - h.params[i])));
  return d;
}

// The fused step is as close to the CPU reference as the tiled step is (both are fp32 sums in
// orders other than the CPU's, with the device's fast exp/log; Adam's normalised update turns
// near-zero gradients' rounding into visible differences): within the bounds test_backends.cpp
// holds the tiled step to, or within twice the tiled step's own distance where that is larger.
void expect_matches_cpu(const TrainConfig& c, int steps, std::int64_t first_step = 0) {
  if (!fuses(c.batch_size, c.hidden_units)) {
    std::printf("  batch %d, hidden %d: not fused on this GPU (%s)\n", c.batch_size, c.hidden_units,
                kernels::plan_fused_step(c.batch_size, c.hidden_units).unsupported);
    return;
  }
  SCOPED_TRACE("batch " + std::to_string(c.batch_size) + ", hidden " +
               std::to_string(c.hidden_units) + ", from step " + std::to_string(first_step));
  const Distance fused = train_against_cpu(c, StepKernel::kFused, steps, first_step);
  const Distance tiled = train_against_cpu(c, StepKernel::kTiled, steps, first_step);
  std::printf("  fused vs cpu: params %.3g, m %.3g, v %.3g; tiled vs cpu: %.3g, %.3g, %.3g\n",
              fused.params, fused.m, fused.v, tiled.params, tiled.m, tiled.v);
  EXPECT_LT(fused.params, std::max(2e-3, 2 * tiled.params));
  EXPECT_LT(fused.m, std::max(2e-3, 2 * tiled.m));
  EXPECT_LT(fused.v, std::max(2e-3, 2 * tiled.v));
  EXPECT_LT(fused.max_param, 2.5e-3 * steps);
}

TEST(FusedStep, MatchesTheCpuWithDropout) {
  REQUIRE_GPU();
  expect_matches_cpu(config(100, 0.9f), 8);
}

TEST(FusedStep, MatchesTheCpuAtTheBatchExtremes) {
  REQUIRE_GPU();
  expect_matches_cpu(config(1, 0.9f), 6);
  expect_matches_cpu(config(kFusedMaxBatch, 1.0f), 6);
}

TEST(FusedStep, MatchesTheCpuWithUnevenAndWideHiddenLayers) {
  REQUIRE_GPU();
  expect_matches_cpu(config(37, 0.8f, 3), 6);     // one block, most of it padding
  expect_matches_cpu(config(64, 0.9f, 501), 6);   // a last block with one unit of four
  expect_matches_cpu(config(50, 0.9f, 1000), 4);  // more blocks than SMs at 4 units: 8 per block
  expect_matches_cpu(config(32, 0.9f, 1004), 3);  // 8 per block, a last block of 4
  expect_matches_cpu(config(16, 0.9f, 1001), 3);  // 8 per block, rows not 16-byte aligned
}

TEST(FusedStep, MatchesTheCpuAcrossAnEpochBoundary) {
  REQUIRE_GPU();
  const TrainConfig c = config(128, 0.9f);
  const std::int64_t boundary = fake().train.count / c.batch_size;  // the batch that straddles
  expect_matches_cpu(c, 3, boundary - 1);
}

TEST(FusedStep, IsBitwiseReproducible) {
  REQUIRE_GPU();
  REQUIRE_FUSED(100, 500);
  const TrainConfig c = config(100, 0.9f);
  std::vector<TrainState> runs;
  for (int run = 0; run < 2; ++run) {
    CudaBackend gpu(c, fake(), initial(c));
    EpochFeeder epochs(gpu, c.seed, c.batch_size, fake().train.count);
    for (int i = 0; i < 20; ++i) {
      epochs.before_step();
      gpu.train_step();
    }
    runs.push_back(gpu.state());
  }
  const std::size_t bytes = runs[0].params.size() * sizeof(float);
  EXPECT_EQ(std::memcmp(runs[0].params.data(), runs[1].params.data(), bytes), 0);
  EXPECT_EQ(std::memcmp(runs[0].adam_m.data(), runs[1].adam_m.data(), bytes), 0);
  EXPECT_EQ(std::memcmp(runs[0].adam_v.data(), runs[1].adam_v.data(), bytes), 0);
}

// The fused and the tiled step train the same model: the same batches and dropout draws, sums in
// another order.
TEST(FusedStep, TrainsLikeTheTiledStep) {
  REQUIRE_GPU();
  REQUIRE_FUSED(100, 500);
  const TrainConfig fused_config = config(100, 0.9f, 500, StepKernel::kFused);
  const TrainConfig tiled_config = config(100, 0.9f, 500, StepKernel::kTiled);
  CudaBackend fused(fused_config, fake(), initial(fused_config));
  CudaBackend tiled(tiled_config, fake(), initial(tiled_config));
  ASSERT_EQ(fused.step_kernel(), "fused");
  ASSERT_EQ(tiled.step_kernel(), "tiled");
  EpochFeeder a(fused, fused_config.seed, 100, fake().train.count);
  EpochFeeder b(tiled, tiled_config.seed, 100, fake().train.count);
  for (int i = 0; i < 30; ++i) {
    a.before_step();
    b.before_step();
    fused.train_step();
    tiled.train_step();
    ASSERT_NEAR(fused.last_loss(), tiled.last_loss(), 1e-3 * std::fabs(tiled.last_loss()) + 1e-6)
        << "step " << i;
  }
  const TrainState f = fused.state(), t = tiled.state();
  EXPECT_EQ(f.step, 30);
  EXPECT_LT(relative_drift(f.params, t.params, initial(tiled_config)), 5e-3);
  EXPECT_NEAR(fused.evaluate_test(), tiled.evaluate_test(), 5);
}

}  // namespace
}  // namespace mnist
