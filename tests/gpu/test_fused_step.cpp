// The fused whole-step kernel (kernels/fused_step.h): when the cuda backend picks it, and its
// steps against the CPU reference and against the tiled step, over the shapes it must handle
// (batches of 1 to 128 rows, hidden layers that do not fill its blocks evenly, 8 units per block,
// a batch straddling two epochs), bitwise reproducibility, and the refusal where it cannot run.
#include <gtest/gtest.h>

#include <cmath>
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

TrainConfig config(int batch, float keep, int hidden = 500,
                   StepKernel kernel = StepKernel::kAuto) {
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

TEST(FusedStep, AutoPicksItForSmallFp32MlpBatches) {
  REQUIRE_GPU();
  const auto kernel_of = [](TrainConfig c) {
    return CudaBackend(c, fake(), initial(c)).step_kernel();
  };
  EXPECT_EQ(kernel_of(config(100, 0.9f)), "fused");
  EXPECT_EQ(kernel_of(config(1, 0.9f)), "fused");
  EXPECT_EQ(kernel_of(config(kFusedMaxBatch, 0.9f)), "fused");
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
  TrainConfig replica = config(100, 0.9f, 500, StepKernel::kFused);
  try {
    CudaBackend shard(replica, fake(), initial(replica), shard_of(100, 0, 2));
    ADD_FAILURE() << "built a fused data-parallel replica";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kBadArguments);
  }
}

// The fused step against the CPU reference for `steps` steps from step `first_step`: the loss of
// every step, and the parameters and Adam moments at the end (bounds as test_backends.cpp's).
void expect_matches_cpu(const TrainConfig& c, int steps, std::int64_t first_step = 0) {
  CpuBackend cpu(c, fake(), initial(c));
  CudaBackend gpu(c, fake(), initial(c));
  ASSERT_EQ(gpu.step_kernel(), "fused");
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
    ASSERT_NEAR(gpu.last_loss(), cpu.last_loss(), 2e-4 * std::fabs(cpu.last_loss()) + 1e-6)
        << "step " << i << ", batch " << c.batch_size << ", hidden " << c.hidden_units;
  }
  const TrainState g = gpu.state(), h = cpu.state();
  EXPECT_EQ(g.step, first_step + steps);
  EXPECT_LT(relative_drift(g.params, h.params, start.params), 2e-3);
  EXPECT_LT(gpu_test::relative_error(g.adam_m, h.adam_m), 2e-3);
  EXPECT_LT(gpu_test::relative_error(g.adam_v, h.adam_v), 2e-3);
  double max_diff = 0;
  for (std::size_t i = 0; i < h.params.size(); ++i)
    max_diff = std::max(max_diff, double(std::fabs(g.params[i] - h.params[i])));
  EXPECT_LT(max_diff, 2.5e-3 * steps);
  EXPECT_NEAR(gpu.evaluate_test(), cpu.evaluate_test(), 3);
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
  expect_matches_cpu(config(37, 0.8f, 3), 6);    // one block, most of it padding
  expect_matches_cpu(config(64, 0.9f, 501), 6);  // a last block with one unit of four
  expect_matches_cpu(config(50, 0.9f, 1000), 4);  // more blocks than SMs at 4 units: 8 per block
}

TEST(FusedStep, MatchesTheCpuAcrossAnEpochBoundary) {
  REQUIRE_GPU();
  const TrainConfig c = config(128, 0.9f);
  const std::int64_t boundary = fake().train.count / c.batch_size;  // the batch that straddles
  expect_matches_cpu(c, 3, boundary - 1);
}

TEST(FusedStep, IsBitwiseReproducible) {
  REQUIRE_GPU();
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
