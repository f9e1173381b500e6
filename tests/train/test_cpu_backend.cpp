#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>

#include "data/dataset.h"
#include "kernels/common/philox.h"
#include "kernels/common/sample_stream.h"
#include "train/cpu_backend.h"
#include "train/epochs.h"

namespace mnist {
namespace {

TrainConfig small_config(ModelKind model, float keep) {
  TrainConfig c;
  c.model = model;
  c.hidden_units = 24;
  c.batch_size = 8;
  c.keep_prob = keep_prob_for(model, keep);
  c.seed = 42;
  return c;
}

const MnistData& fake() {
  static const MnistData data = make_fake_data(7);
  return data;
}

// Central differences of the loss along single coordinates and a random direction, against the
// analytic gradient. The batch, dropout mask (fixed by the step) and parameters stay fixed.
void check_gradient(ModelKind model, float keep) {
  const TrainConfig config = small_config(model, keep);
  const ModelLayout layout = make_layout(model, config.hidden_units);
  std::vector<float> params = initial_parameters(layout, 3);
  CpuBackend backend(config, fake(), params);
  backend.set_epoch_order(0, epoch_order(config.seed, 0, fake().train.count));
  std::vector<float> x, grad;
  std::vector<std::uint8_t> labels;
  backend.gather_batch(0, x, labels);
  const std::int64_t step = 5;
  backend.loss_and_gradient(params, x, labels, step, &grad);

  auto loss_at = [&](const std::vector<float>& p) {
    return double(backend.loss_and_gradient(p, x, labels, step, nullptr));
  };
  const float eps = 1e-3f;
  std::mt19937 rng(11);
  int checked = 0;
  for (const Layer& l : layout.layers) {
    std::vector<std::size_t> coords;
    for (int i = 0; i < 40; ++i) coords.push_back(l.w + rng() % (std::size_t(l.in) * l.out));
    for (int i = 0; i < l.out; ++i) coords.push_back(l.b + i);
    for (std::size_t c : coords) {
      if (std::fabs(grad[c]) < 1e-3f) continue;  // a zero pixel's weight: nothing to compare
      std::vector<float> plus = params, minus = params;
      plus[c] += eps;
      minus[c] -= eps;
      const double numeric = (loss_at(plus) - loss_at(minus)) / (2 * eps);
      EXPECT_NEAR(numeric, grad[c], 2e-3 + 0.03 * std::fabs(grad[c])) << "coordinate " << c;
      ++checked;
    }
  }
  EXPECT_GT(checked, 20);

  std::normal_distribution<float> normal;
  std::vector<float> dir(params.size());
  double analytic = 0;
  for (std::size_t i = 0; i < dir.size(); ++i) {
    dir[i] = normal(rng);
    analytic += double(dir[i]) * grad[i];
  }
  const float h = 2e-4f;
  std::vector<float> plus = params, minus = params;
  for (std::size_t i = 0; i < dir.size(); ++i) {
    plus[i] += h * dir[i];
    minus[i] -= h * dir[i];
  }
  const double numeric = (loss_at(plus) - loss_at(minus)) / (2 * h);
  EXPECT_NEAR(numeric, analytic, 0.02 * std::fabs(analytic) + 1e-3);
}

TEST(CpuBackendGradient, MlpWithoutDropout) { check_gradient(ModelKind::kMlp, 1.0f); }
TEST(CpuBackendGradient, MlpWithDropout) { check_gradient(ModelKind::kMlp, 0.7f); }
TEST(CpuBackendGradient, Softmax) { check_gradient(ModelKind::kSoftmax, 1.0f); }

TEST(CpuBackend, DropoutZeroesAboutOneMinusKeepOfTheHiddenUnits) {
  const TrainConfig config = small_config(ModelKind::kMlp, 0.5f);
  int kept = 0;
  const int n = 100000;
  for (int i = 0; i < n; ++i)
    kept += dropout_uniform(config.seed, 3, std::uint32_t(i)) < config.keep_prob;
  EXPECT_NEAR(double(kept) / n, 0.5, 0.01);
}

TEST(CpuBackend, AdamMatchesTheFormulaByHand) {
  float p = 1.0f, m = 0.0f, v = 0.0f;
  const float g = 0.5f;
  cpu::adam(&p, &g, &m, &v, 1, 0.001f, 1);
  // t = 1: m = 0.05, v = 0.00025, lr_t = 0.001 * sqrt(0.001) / 0.1; step = lr_t * m / sqrt(v).
  EXPECT_NEAR(m, 0.05f, 1e-7);
  EXPECT_NEAR(v, 0.00025f, 1e-8);  // 1 - beta2 is inexact in float
  EXPECT_NEAR(p, 1.0f - 0.001f, 1e-6);
}

TEST(CpuBackend, TrainingIsDeterministicGivenTheSeed) {
  auto run = [](std::uint64_t seed) {
    TrainConfig c = small_config(ModelKind::kMlp, 0.9f);
    c.seed = seed;
    CpuBackend b(c, fake(), initial_parameters(make_layout(c.model, c.hidden_units), seed));
    b.set_epoch_order(0, epoch_order(seed, 0, fake().train.count));
    for (int i = 0; i < 5; ++i) b.train_step();
    return b.state().params;
  };
  EXPECT_EQ(run(1), run(1));
  EXPECT_NE(run(1), run(2));
}

TEST(CpuBackend, LossFallsOnFakeData) {
  TrainConfig c = small_config(ModelKind::kSoftmax, 1.0f);
  c.batch_size = 50;
  c.learning_rate = 0.01f;
  CpuBackend b(c, fake(), initial_parameters(make_layout(c.model, 0), 1));
  b.set_epoch_order(0, epoch_order(1, 0, fake().train.count));
  b.train_step();
  const float first = b.last_loss();
  for (int i = 0; i < 30; ++i) b.train_step();
  EXPECT_LT(b.last_loss(), first * 0.7f);
  EXPECT_GT(b.evaluate_test(), fake().test.count / 2);
}

TEST(Model, InitialisationFollowsTheSample) {
  const ModelLayout layout = make_layout(ModelKind::kMlp, 500);
  ASSERT_EQ(layout.layers.size(), 2u);
  EXPECT_EQ(layout.total, 784u * 500 + 500 + 500 * 10 + 10);
  const auto p = initial_parameters(layout, 9);
  double sum = 0, sum2 = 0;
  const std::size_t n = 784 * 500;
  for (std::size_t i = 0; i < n; ++i) {
    ASSERT_LE(std::fabs(p[i]), 0.2f + 1e-6f);
    sum += p[i];
    sum2 += double(p[i]) * p[i];
  }
  EXPECT_NEAR(sum / n, 0.0, 0.001);
  EXPECT_NEAR(std::sqrt(sum2 / n), 0.088, 0.003);  // stddev of N(0, 0.1) truncated at 2 sigma
  EXPECT_EQ(p[layout.layers[0].b], 0.1f);
  EXPECT_EQ(p[layout.total - 1], 0.1f);
  EXPECT_EQ(initial_parameters(layout, 9), p);
}

TEST(Model, EpochOrderIsAPermutationThatChangesEachEpoch) {
  const auto a = epoch_order(5, 0, 1000), b = epoch_order(5, 1, 1000);
  EXPECT_EQ(std::set<std::int32_t>(a.begin(), a.end()).size(), 1000u);
  EXPECT_EQ(*std::max_element(a.begin(), a.end()), 999);
  EXPECT_NE(a, b);
  EXPECT_EQ(a, epoch_order(5, 0, 1000));
}

TEST(SampleStream, BatchesStraddleEpochs) {
  EXPECT_EQ(stream_position(549, 100, 99, 55000).epoch, 0);  // sample 54,999
  EXPECT_EQ(stream_position(550, 100, 0, 55000).epoch, 1);   // sample 55,000
  EXPECT_EQ(stream_position(550, 100, 1, 55000).index, 1);
  EXPECT_EQ(stream_position(3, 257, 0, 1000).index, 771);
  EXPECT_EQ(order_slot(stream_position(3, 257, 256, 1000), 1000), 1000u + 27u);  // epoch 1, 27
  EXPECT_EQ(order_slot(stream_position(7, 300, 0, 1000), 1000), 100u);           // epoch 2
}

// Records what the feeder hands over; the maths is never called.
class OrderRecorder final : public Backend {
 public:
  std::vector<std::int64_t> epochs;
  std::int64_t steps = 0;
  std::string name() const override { return "recorder"; }
  void set_epoch_order(std::int64_t epoch, const std::vector<std::int32_t>& order) override {
    EXPECT_EQ(order, epoch_order(9, epoch, 1000));
    epochs.push_back(epoch);
  }
  void train_step() override { ++steps; }
  float last_loss() override { return 0; }
  Evaluation evaluate(EvalSplit, bool) override { return {}; }
  std::int64_t steps_taken() const override { return steps; }
  TrainState state() override { return {}; }
  void set_state(const TrainState& s) override { steps = s.step; }
  std::unique_ptr<Stopwatch> stopwatch() override { return nullptr; }
  void enable_step_metrics() override {}
  void record_statistics() override {}
  Summaries take_summaries() override { return {}; }
  void traced_train_step() override { train_step(); }
};

TEST(EpochFeeder, ProvidesEachEpochOnceBeforeItsFirstStep) {
  OrderRecorder backend;
  EpochFeeder feeder(backend, 9, 300, 1000);
  for (int i = 0; i < 10; ++i) {  // 3,000 samples: epochs 0, 1, 2
    feeder.before_step();
    const std::int64_t last = (backend.steps * 300 + 299) / 1000;
    ASSERT_FALSE(backend.epochs.empty());
    EXPECT_EQ(backend.epochs.back(), last) << "step " << backend.steps;
    backend.train_step();
  }
  EXPECT_EQ(backend.epochs, (std::vector<std::int64_t>{0, 1, 2}));

  OrderRecorder resumed;  // a resume at step 7 starts with the epoch step 7 draws from
  resumed.set_state(TrainState{{}, {}, {}, 7});
  EpochFeeder again(resumed, 9, 300, 1000);
  again.before_step();
  EXPECT_EQ(resumed.epochs, (std::vector<std::int64_t>{2}));
}

}  // namespace
}  // namespace mnist
