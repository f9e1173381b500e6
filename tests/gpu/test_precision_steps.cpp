// Whole training steps at --precision tf32 and bf16, both GPU backends, against the fp32 CPU
// reference. The forward's products err by at most (2u + u^2 + K 2^-24) of their magnitude
// (tests/kernels/test_precision.cpp); through the loss that is a small multiple of u (TF32 2^-11,
// BF16 2^-8) of the logits' size. So each step's batch loss must agree within 10 u (1 + |loss|),
// and the test accuracy after the steps within 2 % of the images: loose enough for rounding, far
// too tight for a wrong product (a mislaid fragment gives losses off by O(1) or NaN).
#include <gtest/gtest.h>

#include <cmath>

#include "app/backends.h"
#include "support/gpu_test_util.h"
#include "train/cpu_backend.h"
#include "train/epochs.h"

namespace mnist {
namespace {

bool tensor_cores_present() {
  int device = 0, major = 0;
  return cudaGetDevice(&device) == cudaSuccess &&
         cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) == cudaSuccess &&
         major >= 8;
}

struct Case {
  BackendKind backend;
  Precision precision;
};

class PrecisionSteps : public ::testing::TestWithParam<Case> {};
INSTANTIATE_TEST_SUITE_P(BackendsAndPrecisions, PrecisionSteps,
                         ::testing::Values(Case{BackendKind::kCuda, Precision::kTf32},
                                           Case{BackendKind::kCuda, Precision::kBf16},
                                           Case{BackendKind::kCublas, Precision::kTf32},
                                           Case{BackendKind::kCublas, Precision::kBf16}),
                         [](const ::testing::TestParamInfo<Case>& p) {
                           return std::string(backend_name(p.param.backend)) + "_" +
                                  precision_name(p.param.precision);
                         });

void expect_close_to_fp32_cpu(const Case& c, int batch, int steps) {
  const MnistData data = make_fake_data(12);
  TrainConfig config;
  config.batch_size = batch;
  config.seed = 31;
  config.precision = c.precision;
  const std::vector<float> start = initial_parameters(make_layout(config.model, 500), 3);
  TrainConfig cpu_config = config;
  cpu_config.precision = Precision::kFp32;
  CpuBackend cpu(cpu_config, data, start);
  auto gpu = make_backend(c.backend, config, data, start);
  EpochFeeder a(cpu, config.seed, batch, data.train.count),
      b(*gpu, config.seed, batch, data.train.count);
  const double u = c.precision == Precision::kTf32 ? std::ldexp(1.0, -11) : std::ldexp(1.0, -8);
  for (int i = 0; i < steps; ++i) {
    a.before_step();
    b.before_step();
    cpu.train_step();
    gpu->train_step();
    const double want = cpu.last_loss(), got = gpu->last_loss();
    ASSERT_NEAR(got, want, 10 * u * (1 + std::fabs(want))) << "step " << i;
  }
  const int cpu_correct = cpu.evaluate_test(), gpu_correct = gpu->evaluate_test();
  EXPECT_NEAR(gpu_correct, cpu_correct, 0.02 * data.test.count);
}

TEST_P(PrecisionSteps, StepsFollowTheFp32CpuReference) {
  REQUIRE_GPU();
  if (!tensor_cores_present()) GTEST_SKIP() << "TF32/BF16 need compute capability 8.0 or newer";
  expect_close_to_fp32_cpu(GetParam(), 100, 8);
}

TEST_P(PrecisionSteps, LargeBatchStepsFollowTheFp32CpuReference) {
  REQUIRE_GPU();
  if (!tensor_cores_present()) GTEST_SKIP() << "TF32/BF16 need compute capability 8.0 or newer";
  expect_close_to_fp32_cpu(GetParam(), 2048, 4);
}

}  // namespace
}  // namespace mnist
