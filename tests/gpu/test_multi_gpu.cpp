// Data-parallel training over every visible GPU of one process (label multigpu: run on a machine
// with two or more GPUs; skipped elsewhere). The several-process runs: e2e/multi_process.sh.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "app/backends.h"
#include "gpu/data_parallel.h"
#include "gpu/device.h"
#include "gpu/gpu_check.h"
#include "support/gpu_test_util.h"
#include "train/epochs.h"

namespace mnist {
namespace {

using gpu_test::relative_drift;
using gpu_test::relative_error;

int visible() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess ? count : 0;
}

// A broken driver fails (REQUIRE_GPU); only too few devices skip.
#define REQUIRE_GPUS(n) \
  REQUIRE_GPU();        \
  if (visible() < (n))  \
  GTEST_SKIP() << "needs " << (n) << " CUDA devices, " << visible() << " visible"

const MnistData& fake() {
  static const MnistData data = make_fake_data(8);
  return data;
}

std::vector<int> every_gpu() {
  std::vector<int> all;
  for (int i = 0; i < visible(); ++i) all.push_back(i);
  return all;
}

void expect_matches_one_gpu(int batch, int steps) {
  TrainConfig c;
  c.batch_size = batch;
  c.seed = 13;
  const std::vector<float> start = initial_parameters(make_layout(c.model, c.hidden_units), 2);
  MNIST_CUDA_CHECK(cudaSetDevice(0));
  auto single = make_backend(BackendKind::kCuda, c, fake(), start);
  NcclWorld world;
  world.id = new_nccl_id();
  world.ranks = visible();
  world.timeout = std::chrono::seconds(120);
  DataParallelBackend parallel(c, fake(), start, every_gpu(), world);
  parallel.agree_on_start(ResumePoint{});
  const AllReduceFigure f = parallel.measure_all_reduce(10);
  EXPECT_GT(f.bus_gbps, 1.0) << "an all-reduce between GPUs of one host below 1 GB/s";
  std::cout << "all-reduce of " << f.bytes << " bytes over " << f.ranks << " GPUs: " << f.latency_us
            << " us, bus bandwidth " << f.bus_gbps << " GB/s" << std::endl;
  MNIST_CUDA_CHECK(cudaSetDevice(0));
  EpochFeeder a(*single, c.seed, batch, fake().train.count);
  EpochFeeder b(parallel, c.seed, batch, fake().train.count);
  for (int i = 0; i < steps; ++i) {
    MNIST_CUDA_CHECK(cudaSetDevice(0));
    a.before_step();
    single->train_step();
    b.before_step();
    parallel.train_step();
  }
  MNIST_CUDA_CHECK(cudaSetDevice(0));
  const TrainState s = single->state();
  const TrainState p = parallel.state();
  EXPECT_EQ(p.step, steps);
  EXPECT_LT(relative_drift(p.params, s.params, start), 2e-3);
  // The moments show a wrongly scaled gradient, which Adam's parameters hardly do.
  EXPECT_LT(relative_error(p.adam_m, s.adam_m), 2e-3);
  EXPECT_LT(relative_error(p.adam_v, s.adam_v), 2e-3);
  EXPECT_NEAR(parallel.evaluate_test(), single->evaluate_test(), 5);
  std::vector<DeviceInfo> infos;
  for (int d : every_gpu()) infos.push_back(device_info(d));
  EXPECT_NO_THROW(parallel.check_replicas_agree(infos));
}

TEST(MultiGpu, DataParallelOverEveryGpuMatchesOneGpuAtTheSameGlobalBatch) {
  REQUIRE_GPUS(2);
  expect_matches_one_gpu(100, 30);
}

TEST(MultiGpu, LargeGlobalBatchMatchesOneGpu) {
  REQUIRE_GPUS(2);
  expect_matches_one_gpu(8192, 6);
}

TEST(MultiGpu, EveryGpuPassesItsCheck) {
  REQUIRE_GPUS(2);
  std::ostringstream log;
  const std::vector<DeviceInfo> infos = check_gpus(every_gpu(), log);
  EXPECT_EQ(int(infos.size()), visible());
  EXPECT_NE(log.str().find("Found device 1 with properties"), std::string::npos) << log.str();
}

}  // namespace
}  // namespace mnist
