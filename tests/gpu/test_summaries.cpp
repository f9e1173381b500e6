// The GPU backends' summaries against the CPU reference: per-step scalars, tensor statistics,
// the evaluation's loss on both held-out splits, and traced steps; none of them may change what
// training computes.
#include <gtest/gtest.h>

#include <cmath>

#include "app/backends.h"
#include "support/gpu_test_util.h"
#include "train/cpu_backend.h"
#include "train/epochs.h"

namespace mnist {
namespace {

const MnistData& fake() {
  static const MnistData data = make_fake_data(5);
  return data;
}

TrainConfig config(ModelKind model, int batch) {
  TrainConfig c;
  c.model = model;
  c.batch_size = batch;
  c.keep_prob = keep_prob_for(model, 0.9f);
  c.seed = 31;
  return c;
}

std::unique_ptr<Backend> make(BackendKind kind, const TrainConfig& c) {
  return make_backend(kind, c, fake(), initial_parameters(make_layout(c.model, c.hidden_units), 2));
}

// `steps` training steps through the loop's feeder.
void train(Backend& b, const TrainConfig& c, int steps) {
  EpochFeeder epochs(b, c.seed, c.batch_size, fake().train.count);
  for (int i = 0; i < steps; ++i) {
    epochs.before_step();
    b.train_step();
  }
}

class GpuSummaries : public ::testing::TestWithParam<BackendKind> {};
INSTANTIATE_TEST_SUITE_P(Backends, GpuSummaries,
                         ::testing::Values(BackendKind::kCuda, BackendKind::kCublas),
                         [](const ::testing::TestParamInfo<BackendKind>& p) {
                           return std::string(backend_name(p.param));
                         });

TEST_P(GpuSummaries, StepScalarsMatchTheCpu) {
  REQUIRE_GPU();
  for (ModelKind model : {ModelKind::kMlp, ModelKind::kSoftmax}) {
    const TrainConfig c = config(model, 100);
    auto gpu = make(GetParam(), c);
    auto cpu = make(BackendKind::kCpu, c);
    gpu->enable_step_metrics();
    cpu->enable_step_metrics();
    EpochFeeder gpu_epochs(*gpu, c.seed, c.batch_size, fake().train.count);
    EpochFeeder cpu_epochs(*cpu, c.seed, c.batch_size, fake().train.count);
    for (int i = 0; i < 12; ++i) {
      gpu_epochs.before_step();
      cpu_epochs.before_step();
      gpu->train_step();
      cpu->train_step();
    }
    const float last = gpu->last_loss();
    const Summaries g = gpu->take_summaries(), h = cpu->take_summaries();
    ASSERT_EQ(g.steps.size(), 12u);
    ASSERT_EQ(h.steps.size(), 12u);
    for (std::size_t i = 0; i < 12; ++i) {
      EXPECT_EQ(g.steps[i].step, std::int64_t(i));
      EXPECT_NEAR(g.steps[i].cross_entropy, h.steps[i].cross_entropy,
                  2e-4 * h.steps[i].cross_entropy + 1e-6)
          << "step " << i;
      EXPECT_NEAR(g.steps[i].accuracy, h.steps[i].accuracy, 0.0201) << "step " << i;  // ties
    }
    EXPECT_EQ(g.steps.back().cross_entropy, last) << "the same reduction as last_loss()";
    EXPECT_TRUE(gpu->take_summaries().steps.empty()) << "taken once";
  }
}

TEST_P(GpuSummaries, ScalarsOfMoreStepsThanTheRingHolds) {
  REQUIRE_GPU();
  const TrainConfig c = config(ModelKind::kSoftmax, 10);
  auto gpu = make(GetParam(), c);
  gpu->enable_step_metrics();
  train(*gpu, c, 600);
  const Summaries s = gpu->take_summaries();
  ASSERT_EQ(s.steps.size(), 600u);
  for (std::size_t i = 0; i < s.steps.size(); ++i) {
    EXPECT_EQ(s.steps[i].step, std::int64_t(i));
    ASSERT_TRUE(std::isfinite(s.steps[i].cross_entropy));
  }
}

// Statistics from the same parameters: the parameters' histograms are identical to the CPU's, the
// activations' within float rounding.
TEST_P(GpuSummaries, StatisticsMatchTheCpu) {
  REQUIRE_GPU();
  for (ModelKind model : {ModelKind::kMlp, ModelKind::kSoftmax}) {
    for (int batch : {7, 100, 2048}) {  // 2048: the unsplit forward
      const TrainConfig c = config(model, batch);
      auto gpu = make(GetParam(), c);
      auto cpu = make(BackendKind::kCpu, c);
      train(*cpu, c, 6);
      gpu->set_state(cpu->state());
      EpochFeeder gpu_epochs(*gpu, c.seed, c.batch_size, fake().train.count);
      EpochFeeder cpu_epochs(*cpu, c.seed, c.batch_size, fake().train.count);
      // (Feeding from step 6: the feeders provide the epochs the next step draws from.)
      gpu_epochs.before_step();
      cpu_epochs.before_step();
      gpu->record_statistics();
      cpu->record_statistics();
      const Summaries g = gpu->take_summaries(), h = cpu->take_summaries();
      ASSERT_EQ(g.statistics.size(), 1u);
      ASSERT_EQ(h.statistics.size(), 1u);
      EXPECT_EQ(g.statistics[0].step, 6);
      const auto names = summary_tensor_names(make_layout(model, c.hidden_units));
      ASSERT_EQ(g.statistics[0].tensors.size(), names.size());
      ASSERT_EQ(h.statistics[0].tensors.size(), names.size());
      for (std::size_t t = 0; t < names.size(); ++t) {
        const Histogram& a = g.statistics[0].tensors[t];
        const Histogram& b = h.statistics[0].tensors[t];
        const std::string what = names[t] + " batch " + std::to_string(batch);
        EXPECT_EQ(a.num, b.num) << what;
        const bool parameter = names[t].find("/weights") != std::string::npos ||
                               names[t].find("/biases") != std::string::npos;
        if (parameter) {
          EXPECT_EQ(a.min, b.min) << what;
          EXPECT_EQ(a.max, b.max) << what;
          EXPECT_EQ(a.bucket_limits, b.bucket_limits) << what;
          EXPECT_EQ(a.bucket_counts, b.bucket_counts) << what;
          EXPECT_NEAR(a.sum, b.sum, 1e-9 * (b.sum_squares + 1)) << what;
        } else {
          const double scale = std::sqrt(b.sum_squares / b.num) + 1e-6;
          EXPECT_NEAR(a.min, b.min, 1e-4 * scale + 1e-6) << what;
          EXPECT_NEAR(a.max, b.max, 1e-4 * scale + 1e-6) << what;
          EXPECT_NEAR(a.sum / a.num, b.sum / b.num, 1e-4 * scale) << what;
          EXPECT_NEAR(a.sum_squares, b.sum_squares, 1e-4 * b.sum_squares + 1e-9) << what;
        }
      }
    }
  }
}

TEST_P(GpuSummaries, EvaluationLossMatchesTheCpuOnBothSplits) {
  REQUIRE_GPU();
  const TrainConfig c = config(ModelKind::kMlp, 100);
  auto gpu = make(GetParam(), c);
  auto cpu = make(BackendKind::kCpu, c);
  train(*cpu, c, 15);
  gpu->set_state(cpu->state());
  for (EvalSplit split : {EvalSplit::kTest, EvalSplit::kValidation}) {
    const Evaluation g = gpu->evaluate(split, true), h = cpu->evaluate(split, true);
    EXPECT_NEAR(g.correct, h.correct, 2);
    EXPECT_GT(h.cross_entropy, 0.0f);
    EXPECT_NEAR(g.cross_entropy, h.cross_entropy, 1e-4 * h.cross_entropy);
    EXPECT_EQ(gpu->evaluate(split, false).correct, g.correct) << "with and without the loss";
  }
}

// A traced step is the same step: same parameters to the bit, every op and kernel timed.
TEST_P(GpuSummaries, TracedStepIsTheSameStep) {
  REQUIRE_GPU();
  for (int batch : {100, 4096}) {  // the fused step, and the tiled one
    const TrainConfig c = config(ModelKind::kMlp, batch);
    auto plain = make(GetParam(), c), traced = make(GetParam(), c);
    train(*plain, c, 3);
    train(*traced, c, 2);
    EpochFeeder epochs(*traced, c.seed, c.batch_size, fake().train.count);
    epochs.before_step();
    traced->traced_train_step();
    EXPECT_EQ(traced->steps_taken(), 3);
    const Summaries taken = traced->take_summaries();
    ASSERT_EQ(taken.traces.size(), 1u);
    EXPECT_EQ(taken.traces[0].step, 2);
    const std::vector<TracedOp>& ops = taken.traces[0].ops;
    EXPECT_EQ(traced->state().params, plain->state().params) << "batch " << batch;
    ASSERT_FALSE(ops.empty());
    int kernels = 0;
    for (const TracedOp& op : ops) {
      EXPECT_GE(op.start_us, 0.0) << op.name;
      EXPECT_GE(op.duration_us, 0.0) << op.name;
      EXPECT_LT(op.start_us, 1e6) << op.name;
      kernels += op.kernel;
    }
    if (traced->step_kernel() == "fused") {
      // The fused step: one op holding its one kernel.
      EXPECT_GE(kernels, 1) << "batch " << batch;
      EXPECT_EQ(ops.front().name, "step");
    } else if (GetParam() == BackendKind::kCuda) {
      // forward, loss_and_backward, two updates: each an op with at least one kernel inside.
      EXPECT_GE(kernels, 4) << "batch " << batch;
      EXPECT_EQ(ops.front().name, "forward");
    } else {
      EXPECT_EQ(ops.front().name, "gather_batch");
      EXPECT_EQ(ops.back().name, "adam_update");
    }
    // The graph replay still works after an eager step.
    train(*traced, c, 1);
    train(*plain, c, 1);
    EXPECT_EQ(traced->state().params, plain->state().params);
  }
}

// Summaries read the training, they never change it.
TEST_P(GpuSummaries, SummariesDoNotChangeTraining) {
  REQUIRE_GPU();
  const TrainConfig c = config(ModelKind::kMlp, 100);
  auto plain = make(GetParam(), c), observed = make(GetParam(), c);
  train(*plain, c, 12);
  observed->enable_step_metrics();
  EpochFeeder epochs(*observed, c.seed, c.batch_size, fake().train.count);
  for (int i = 0; i < 12; ++i) {
    epochs.before_step();
    if (i % 3 == 0) observed->record_statistics();
    observed->train_step();
    if (i % 5 == 4) observed->take_summaries();
  }
  EXPECT_EQ(observed->state().params, plain->state().params);
  // Recorded before steps 0, 3, 6 and 9; taken after steps 4 and 9.
  EXPECT_TRUE(observed->take_summaries().statistics.empty());
}

}  // namespace
}  // namespace mnist
