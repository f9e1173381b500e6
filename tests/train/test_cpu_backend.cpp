#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>

#include "data/dataset.h"
#include "kernels/common/philox.h"
#include "kernels/common/sample_stream.h"
#include "support/dropout_steps.h"
#include "train/cpu_backend.h"
#include "train/epochs.h"

namespace mnist {
namespace {

using dropout_test::expect_fresh_masks_each_step;
using dropout_test::parameters_passing_every_relu;

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

// Philox4x32-10 against Random123's known answers (its tests/kat_vectors, the three
// "philox4x32 10" lines: counter, key, result).
TEST(Philox, MatchesTheRandom123KnownAnswers) {
  struct Known {
    Philox4 counter;
    std::uint32_t k0, k1;
    Philox4 result;
  };
  const Known known[] = {
      {{{0, 0, 0, 0}}, 0, 0, {{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}}},
      {{{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}},
       0xffffffffu,
       0xffffffffu,
       {{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}}},
      {{{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}},
       0xa4093822u,
       0x299f31d0u,
       {{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}}}};
  for (const Known& k : known) {
    const Philox4 got = philox4x32_10(k.counter, k.k0, k.k1);
    for (int q = 0; q < 4; ++q)
      EXPECT_EQ(got.v[q], k.result.v[q])
          << std::hex << "counter " << k.counter.v[0] << ", word " << q;
  }
}

// A dropout draw is a word of Philox4x32-10 at counter {group, step's low word, step's high word,
// 0x0d0d} and key {seed's low word, seed's high word}, its top 24 bits over 2^24. The words here
// come from Random123's own philox.h, so the step (both of its words) and the seed must enter
// the stream where the kernels expect them.
TEST(Philox, DropoutDrawsAreTheRandom123StreamAtTheirCounter) {
  struct Draws {
    std::uint64_t seed, step;
    std::uint32_t group;
    std::uint32_t words[4];
  };
  const Draws cases[] = {
      {42, 0, 0, {0x3f7e560du, 0x7dec5f89u, 0xfa664762u, 0x91695f8bu}},
      {42, 1, 0, {0xc4f483c4u, 0x3bbff92fu, 0xb7d5c7efu, 0xe20aabacu}},
      {0x0123456789abcdefu, 0x100000005u, 7, {0xf52e8061u, 0xfdaff102u, 0x8110265du, 0xe29197fcu}}};
  for (const Draws& c : cases) {
    float u[4];
    dropout_uniform4(c.seed, c.step, c.group, u);
    for (int q = 0; q < 4; ++q) {
      const float want = float(c.words[q] >> 8) / 16777216.0f;
      EXPECT_EQ(u[q], want) << "step " << c.step << ", word " << q;
      EXPECT_EQ(dropout_uniform(c.seed, c.step, 4 * c.group + std::uint32_t(q)), want);
    }
  }
}

// A batch of one row and dW2 = h^T dlogits, db2 = dlogits: h[j] = dW2[j][c] / db2[c] reads the
// hidden layer back from the gradient. Expected here in float64: a kept unit is relu(pre) / keep
// (the scale applied by the test, not by philox.h), a dropped one 0; db1 = dz = (dlogits W2^T)
// / keep where the unit is positive. The mask is the stream's (seed, step, unit).
TEST(CpuBackendDropout, KeptUnitsAreScaledByOneOverKeepForwardAndBackward) {
  TrainConfig c = small_config(ModelKind::kMlp, 0.5f);
  c.hidden_units = 256;
  c.batch_size = 1;
  const ModelLayout layout = make_layout(c.model, c.hidden_units);
  const Layer &l1 = layout.layers[0], &l2 = layout.layers[1];
  std::vector<float> params = initial_parameters(layout, 5);
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (int j = 0; j < l1.out; ++j) params[l1.b + j] = uniform(rng);
  for (std::size_t i = 0; i < std::size_t(l2.in) * l2.out; ++i)
    params[l2.w + i] = 0.1f * uniform(rng);
  CpuBackend backend(c, fake(), params);
  backend.set_epoch_order(0, epoch_order(c.seed, 0, fake().train.count));
  std::vector<float> x, grad;
  std::vector<std::uint8_t> labels;
  backend.gather_batch(0, x, labels);
  const std::int64_t step = 3;
  const float loss = backend.loss_and_gradient(params, x, labels, step, &grad);

  const double keep = 0.5;
  std::vector<double> pre(l1.out), h(l1.out);
  int kept_positive = 0, dropped_positive = 0;
  for (int j = 0; j < l1.out; ++j) {
    pre[j] = params[l1.b + j];
    for (int k = 0; k < l1.in; ++k)
      pre[j] += double(x[k]) * params[l1.w + std::size_t(k) * l1.out + j];
    const bool kept = dropout_uniform(c.seed, step, std::uint32_t(j)) < c.keep_prob;
    h[j] = kept ? std::max(pre[j], 0.0) / keep : 0.0;
    kept_positive += kept && pre[j] > 0;
    dropped_positive += !kept && pre[j] > 0;
  }
  EXPECT_GT(kept_positive, 30);
  EXPECT_GT(dropped_positive, 30);
  std::vector<double> dlogits(kClasses);
  double zmax = -1e300;
  for (int k = 0; k < kClasses; ++k) {
    dlogits[k] = params[l2.b + k];
    for (int j = 0; j < l1.out; ++j)
      dlogits[k] += h[j] * params[l2.w + std::size_t(j) * kClasses + k];
    zmax = std::max(zmax, dlogits[k]);
  }
  double sum = 0;
  for (double z : dlogits) sum += std::exp(z - zmax);
  const double expected_loss = std::log(sum) + zmax - dlogits[labels[0]];
  for (int k = 0; k < kClasses; ++k)
    dlogits[k] = std::exp(dlogits[k] - zmax) / sum - (k == labels[0] ? 1.0 : 0.0);
  EXPECT_NEAR(loss, expected_loss, 1e-5 * (1 + expected_loss));

  int read_class = 0;  // the class whose db2 is largest, to divide by
  for (int k = 1; k < kClasses; ++k)
    if (std::fabs(grad[l2.b + k]) > std::fabs(grad[l2.b + read_class])) read_class = k;
  int wrong_h = 0, wrong_dz = 0;  // units off; the first of each is reported
  for (int j = 0; j < l1.out; ++j) {
    if (std::fabs(pre[j]) < 1e-4) continue;  // float and float64 may disagree on the ReLU
    const double read =
        double(grad[l2.w + std::size_t(j) * kClasses + read_class]) / grad[l2.b + read_class];
    if (std::fabs(read - h[j]) > 1e-4 * (1 + std::fabs(h[j])) && wrong_h++ == 0)
      ADD_FAILURE() << "unit " << j << ": h " << read << ", expected " << h[j];
    double dz = 0;
    for (int k = 0; k < kClasses; ++k)
      dz += dlogits[k] * params[l2.w + std::size_t(j) * kClasses + k];
    dz = h[j] > 0 ? dz / keep : 0.0;
    if (std::fabs(grad[l1.b + j] - dz) > 1e-6 + 1e-4 * std::fabs(dz) && wrong_dz++ == 0)
      ADD_FAILURE() << "unit " << j << ": db1 " << grad[l1.b + j] << ", expected " << dz;
  }
  EXPECT_EQ(wrong_h, 0);
  EXPECT_EQ(wrong_dz, 0);
}

TEST(CpuBackendDropout, EachTrainingStepDrawsItsOwnMask) {
  TrainConfig c = small_config(ModelKind::kMlp, 0.5f);
  c.hidden_units = 512;
  c.batch_size = 1;
  CpuBackend backend(c, fake(),
                     parameters_passing_every_relu(make_layout(c.model, c.hidden_units)));
  expect_fresh_masks_each_step(backend, c, fake());
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

// Three steps of TF's Adam in float64, by hand: the bias correction depends on t, so a wrong t or
// a correction frozen at t = 1 moves the parameter by a fraction of the step size.
TEST(CpuBackend, AdamFollowsItsBiasCorrectionOverSteps) {
  const double b1 = kAdamBeta1, b2 = kAdamBeta2, eps = kAdamEpsilon, lr = 0.01;
  const float grads[] = {0.5f, -0.2f, 0.1f};
  float p = 1.0f, m = 0.0f, v = 0.0f;
  double pd = 1.0, md = 0.0, vd = 0.0;
  for (int t = 1; t <= 3; ++t) {
    const float g = grads[t - 1];
    cpu::adam(&p, &g, &m, &v, 1, float(lr), t);
    md = b1 * md + (1 - b1) * g;
    vd = b2 * vd + (1 - b2) * double(g) * g;
    const double lr_t = lr * std::sqrt(1 - std::pow(b2, t)) / (1 - std::pow(b1, t));
    pd -= lr_t * md / (std::sqrt(vd) + eps);
    EXPECT_NEAR(m, md, 1e-7) << "t " << t;
    EXPECT_NEAR(v, vd, 1e-8) << "t " << t;
    EXPECT_NEAR(p, pd, 1e-6) << "t " << t;
  }
}

// The mean softmax cross-entropy and its gradient (softmax - onehot) / rows, against float64 on
// rows that include a large logit (the max-shift must keep exp finite).
TEST(CpuBackend, SoftmaxCrossEntropyMatchesFloat64) {
  const int rows = 3;
  std::vector<float> logits(rows * kClasses);
  for (int i = 0; i < rows * kClasses; ++i) logits[i] = 0.37f * float((i * 7) % 11) - 1.5f;
  logits[kClasses + 4] = 95.0f;
  const std::uint8_t labels[rows] = {2, 4, 9};
  std::vector<float> dlogits(logits.size());
  const float loss = cpu::softmax_xent(logits.data(), labels, dlogits.data(), rows, kClasses);
  double total = 0;
  for (int r = 0; r < rows; ++r) {
    const float* z = logits.data() + r * kClasses;
    const double zmax = *std::max_element(z, z + kClasses);
    double sum = 0;
    for (int k = 0; k < kClasses; ++k) sum += std::exp(z[k] - zmax);
    total += std::log(sum) + zmax - z[labels[r]];
    for (int k = 0; k < kClasses; ++k) {
      const double want = (std::exp(z[k] - zmax) / sum - (k == labels[r])) / rows;
      EXPECT_NEAR(dlogits[r * kClasses + k], want, 1e-7) << "row " << r << ", class " << k;
    }
  }
  EXPECT_NEAR(loss, total / rows, 1e-5);
}

// Evaluation is the forward pass without dropout (keep 0.5 here must not matter), on the split
// asked for: the hits (first maximum) and the mean cross-entropy, against float64.
TEST(CpuBackend, EvaluationIsTheForwardPassWithoutDropout) {
  const TrainConfig c = small_config(ModelKind::kMlp, 0.5f);
  const ModelLayout layout = make_layout(c.model, c.hidden_units);
  const std::vector<float> params = initial_parameters(layout, 4);
  CpuBackend backend(c, fake(), params);
  const Layer &l1 = layout.layers[0], &l2 = layout.layers[1];
  for (const EvalSplit split : {EvalSplit::kTest, EvalSplit::kValidation}) {
    const Dataset& set = split == EvalSplit::kTest ? fake().test : fake().validation;
    int correct = 0;
    double loss = 0;
    std::vector<double> h(l1.out), z(kClasses);
    for (int r = 0; r < set.count; ++r) {
      const std::uint8_t* pixels = set.images.data() + std::size_t(r) * kImagePixels;
      for (int j = 0; j < l1.out; ++j) h[j] = params[l1.b + j];
      for (int k = 0; k < kImagePixels; ++k) {
        const double x = pixels[k] * double(kPixelScale);
        if (x == 0) continue;
        for (int j = 0; j < l1.out; ++j) h[j] += x * params[l1.w + std::size_t(k) * l1.out + j];
      }
      for (int k = 0; k < kClasses; ++k) {
        z[k] = params[l2.b + k];
        for (int j = 0; j < l1.out; ++j)
          z[k] += std::max(h[j], 0.0) * params[l2.w + std::size_t(j) * kClasses + k];
      }
      correct += std::max_element(z.begin(), z.end()) - z.begin() == set.labels[r];
      const double zmax = *std::max_element(z.begin(), z.end());
      double sum = 0;
      for (double v : z) sum += std::exp(v - zmax);
      loss += std::log(sum) + zmax - z[set.labels[r]];
    }
    const Evaluation e = backend.evaluate(split, true);
    EXPECT_NEAR(e.correct, correct, 2) << set.count << " images";  // float may break near-ties
    EXPECT_NEAR(e.cross_entropy, loss / set.count, 1e-5 * loss / set.count);
    EXPECT_EQ(backend.evaluate(split, false).cross_entropy, 0.0f);
  }
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
