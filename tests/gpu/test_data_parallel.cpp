// Data-parallel training on one GPU: the shards' arithmetic (rows of the global batch, their
// dropout masks, the gradient scaled by rows / batch) checked without NCCL by summing two replicas'
// gradients on the host, and the NCCL path itself with a world of one rank. The several-GPU and
// several-process runs are in test_multi_gpu.cpp and e2e/multi_process.sh (label multigpu).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "app/backends.h"
#include "gpu/cuda_backend.h"
#include "gpu/data_parallel.h"
#include "gpu/device.h"
#include "support/gpu_test_util.h"
#include "train/epochs.h"

namespace mnist {
namespace {

using gpu_test::relative_drift;
using gpu_test::relative_error;

const MnistData& fake() {
  static const MnistData data = make_fake_data(5);
  return data;
}

TrainConfig config(ModelKind model, int batch, float keep) {
  TrainConfig c;
  c.model = model;
  c.batch_size = batch;
  c.keep_prob = keep_prob_for(model, keep);
  c.seed = 91;
  return c;
}

std::vector<float> initial(const TrainConfig& c) {
  return initial_parameters(make_layout(c.model, c.hidden_units), 6);
}

std::vector<float> download(const float* device, std::size_t n) {
  std::vector<float> host(n);
  MNIST_CUDA_CHECK(cudaMemcpy(host.data(), device, n * sizeof(float), cudaMemcpyDeviceToHost));
  return host;
}

// Shards of the global batch on one GPU, their gradients summed on the host in rank order (what
// the all-reduce does), against the whole batch on one backend.
void expect_shards_match_whole_batch(ModelKind model, int batch, float keep, int shards,
                                     int steps) {
  const TrainConfig c = config(model, batch, keep);
  CudaBackend whole(c, fake(), initial(c));
  EpochFeeder whole_epochs(whole, c.seed, batch, fake().train.count);
  std::vector<std::unique_ptr<CudaBackend>> replicas;
  std::vector<std::unique_ptr<EpochFeeder>> feeders;
  for (int r = 0; r < shards; ++r) {
    replicas.push_back(
        std::make_unique<CudaBackend>(c, fake(), initial(c), shard_of(batch, r, shards)));
    feeders.push_back(
        std::make_unique<EpochFeeder>(*replicas.back(), c.seed, batch, fake().train.count));
  }
  const std::vector<float> start = initial(c);
  const std::size_t n = start.size();
  for (int step = 0; step < steps; ++step) {
    whole_epochs.before_step();
    whole.train_step();
    std::vector<double> sum(n, 0.0);
    double loss = 0.0;
    for (int r = 0; r < shards; ++r) {
      feeders[r]->before_step();
      replicas[r]->enqueue_gradients();
      replicas[r]->synchronize();
      const std::vector<float> g = download(replicas[r]->gradient(), n);
      for (std::size_t i = 0; i < n; ++i) sum[i] += g[i];
      loss += double(replicas[r]->last_loss()) * shard_of(batch, r, shards).rows / batch;
    }
    std::vector<float> reduced(sum.begin(), sum.end());
    for (auto& replica : replicas) {
      // On the replica's own stream, so ordered before its apply: a pageable cudaMemcpy may
      // return before its DMA lands, and the legacy stream does not order non-blocking streams.
      MNIST_CUDA_CHECK(cudaMemcpyAsync(replica->gradient(), reduced.data(), n * sizeof(float),
                                       cudaMemcpyHostToDevice, replica->stream()));
      replica->enqueue_apply();
    }
    ASSERT_NEAR(loss, whole.last_loss(), 1e-4 * std::fabs(whole.last_loss()) + 1e-6)
        << "step " << step << ": the shards' batch loss is not the whole batch's";
    if (step == 0) {  // one step: m = (1 - beta1) g, so the summed gradient itself is compared
      EXPECT_LT(relative_error(replicas[0]->state().adam_m, whole.state().adam_m), 1e-4)
          << "the shards' summed gradient is not the whole batch's (scale rows / batch?)";
    }
  }
  const TrainState w = whole.state();
  for (int r = 0; r < shards; ++r) {
    const TrainState s = replicas[r]->state();
    EXPECT_EQ(s.step, steps);
    // The replicas apply the same update to the same parameters: identical bits.
    EXPECT_EQ(std::memcmp(s.params.data(), replicas[0]->state().params.data(), n * sizeof(float)),
              0)
        << "replica " << r;
    // Against the whole batch: the same gradient summed in another order (fp32 rounding only; an
    // Adam step on a near-zero gradient may flip, hence a relative bound like the CPU tests').
    EXPECT_LT(relative_drift(s.params, w.params, start), 2e-3) << "replica " << r;
    EXPECT_LT(relative_error(s.adam_m, w.adam_m), 2e-3) << "replica " << r;
    EXPECT_LT(relative_error(s.adam_v, w.adam_v), 2e-3) << "replica " << r;
  }
  EXPECT_NEAR(replicas[0]->evaluate_test(), whole.evaluate_test(), 3);
}

TEST(DataParallelShards, TwoEvenShardsWithDropoutMatchTheWholeBatch) {
  REQUIRE_GPU();
  expect_shards_match_whole_batch(ModelKind::kMlp, 100, 0.9f, 2, 8);
}

TEST(DataParallelShards, UnevenShardsMatchTheWholeBatch) {
  REQUIRE_GPU();
  expect_shards_match_whole_batch(ModelKind::kMlp, 103, 0.9f, 4, 6);  // 26, 26, 26, 25 rows
}

TEST(DataParallelShards, LargeBatchSplitReductionShardsMatch) {
  REQUIRE_GPU();
  expect_shards_match_whole_batch(ModelKind::kMlp, 4096, 0.9f, 2, 4);  // split-K weight gradients
}

TEST(DataParallelShards, SoftmaxShardsMatch) {
  REQUIRE_GPU();
  expect_shards_match_whole_batch(ModelKind::kSoftmax, 120, 1.0f, 3, 6);
}

// The whole NCCL path with a world of one rank (one GPU): the halves around a real all-reduce,
// the start agreement, the end check, a traced step and the summaries, against the one-GPU
// backend.
TEST(DataParallelNccl, OneRankWorldTrainsLikeTheOneGpuBackend) {
  REQUIRE_GPU();
  TrainConfig c = config(ModelKind::kMlp, 100, 0.9f);
  auto single = make_backend(BackendKind::kCuda, c, fake(), initial(c));
  NcclWorld world;
  world.id = new_nccl_id();
  world.ranks = 1;
  world.timeout = std::chrono::seconds(60);
  DataParallelBackend parallel(c, fake(), initial(c), {0}, world);
  EXPECT_EQ(parallel.ranks(), 1);
  const ResumePoint resume = parallel.agree_on_start(ResumePoint{0, 0.0f});
  EXPECT_EQ(resume.iteration, 0);
  const AllReduceFigure f = parallel.measure_all_reduce(5);
  EXPECT_EQ(f.bytes, initial(c).size() * sizeof(float));
  EXPECT_GT(f.latency_us, 0.0);
  EXPECT_EQ(f.bus_gbps, 0.0);  // one rank: nothing crosses a link

  EpochFeeder a(*single, c.seed, c.batch_size, fake().train.count);
  EpochFeeder b(parallel, c.seed, c.batch_size, fake().train.count);
  parallel.enable_step_metrics();
  for (int step = 0; step < 12; ++step) {
    a.before_step();
    b.before_step();
    single->train_step();
    if (step == 5)
      parallel.traced_train_step();
    else
      parallel.train_step();
  }
  parallel.record_statistics();
  const Summaries s = parallel.take_summaries();
  ASSERT_EQ(s.steps.size(), 12u);
  EXPECT_EQ(s.traces.size(), 1u);
  EXPECT_EQ(s.statistics.size(), 1u);
  bool saw_all_reduce = false;
  for (const TracedOp& op : s.traces.at(0).ops) saw_all_reduce |= op.name == "all_reduce";
  EXPECT_TRUE(saw_all_reduce);
  const TrainState p = parallel.state(), q = single->state();
  EXPECT_EQ(p.step, 12);
  EXPECT_LT(relative_drift(p.params, q.params, initial(c)), 1e-4);
  EXPECT_LT(relative_error(p.adam_m, q.adam_m), 1e-4);
  EXPECT_LT(relative_error(p.adam_v, q.adam_v), 1e-4);
  EXPECT_NEAR(parallel.last_loss(), single->last_loss(), 1e-4);
  EXPECT_EQ(parallel.evaluate_test(), single->evaluate_test());
  EXPECT_NO_THROW(parallel.check_replicas_agree({device_info(0)}));
}

}  // namespace
}  // namespace mnist
