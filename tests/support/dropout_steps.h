// Dropout on values, for any backend (tests/train's CPU reference and tests/gpu's GPU backends):
// one training step read back through Adam's first moment, its hidden activations and bias
// gradient checked against float64 with 1 / keep applied here, and consecutive steps' masks
// compared. The mask itself comes from the shared Philox stream; the scale is computed here.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "data/dataset.h"
#include "kernels/common/philox.h"
#include "kernels/common/sample_stream.h"
#include "train/backend.h"
#include "train/epochs.h"
#include "train/model.h"

namespace mnist::dropout_test {

// One training step at `step` from zero Adam moments, read back through its first moment m = (1 -
// beta1) g. W1 = 0 and b1 > 0 pass every ReLU, so h[j] = b1[j] / keep on a kept unit and 0 on a
// dropped one; a batch of one row gives dW2[j][k] = h[j] dlogits[k], db2 = dlogits and db1[j] =
// (dlogits . W2[j]) / keep on a kept unit. Checks the loss, h and db1 against float64 (the 1 / keep
// applied here, the mask the stream's at (seed, step, unit)) and returns the units the step kept
// (those with a nonzero dW2).
inline std::vector<bool> units_kept_by_training_step(Backend& backend, const TrainConfig& c,
                                                     const MnistData& data,
                                                     const std::vector<float>& params,
                                                     std::int64_t step) {
  const ModelLayout layout = make_layout(c.model, c.hidden_units);
  const Layer &l1 = layout.layers[0], &l2 = layout.layers[1];
  const std::vector<float> zeros(params.size(), 0.0f);
  backend.set_state(TrainState{params, zeros, zeros, step});
  backend.train_step();
  const float loss = backend.last_loss();
  const std::vector<float> m = backend.state().adam_m;
  const auto grad = [&](std::size_t i) { return double(m[i]) / double(1.0f - kAdamBeta1); };
  const double keep = c.keep_prob;
  std::vector<double> h(l1.out), dlogits(kClasses);
  for (int k = 0; k < kClasses; ++k) dlogits[k] = params[l2.b + k];
  for (int j = 0; j < l1.out; ++j) {
    const bool kept = dropout_uniform(c.seed, std::uint64_t(step), std::uint32_t(j)) < keep;
    h[j] = kept ? params[l1.b + j] / keep : 0.0;
    for (int k = 0; k < kClasses; ++k)
      dlogits[k] += h[j] * params[l2.w + std::size_t(j) * kClasses + k];
  }
  const int label = data.train.labels[epoch_order(c.seed, 0, data.train.count)[step]];
  const double zmax = *std::max_element(dlogits.begin(), dlogits.end());
  double sum = 0;
  for (double z : dlogits) sum += std::exp(z - zmax);
  const double expected_loss = std::log(sum) + zmax - dlogits[label];
  EXPECT_NEAR(loss, expected_loss, 1e-4 * (1 + expected_loss)) << "step " << step;
  for (int k = 0; k < kClasses; ++k)
    dlogits[k] = std::exp(dlogits[k] - zmax) / sum - (k == label ? 1.0 : 0.0);
  int read_class = 0;  // the class whose db2 is largest, to divide by
  for (int k = 1; k < kClasses; ++k)
    if (std::fabs(dlogits[k]) > std::fabs(dlogits[read_class])) read_class = k;
  std::vector<bool> kept(l1.out);
  int wrong_h = 0, wrong_db1 = 0;  // units off; the first of each is reported
  for (int j = 0; j < l1.out; ++j) {
    const std::size_t row = l2.w + std::size_t(j) * kClasses;
    kept[j] = m[row] != 0.0f;
    const double read = grad(row + read_class) / grad(l2.b + read_class);
    if (std::fabs(read - h[j]) > 1e-4 * (1 + h[j]) && wrong_h++ == 0)
      ADD_FAILURE() << "step " << step << ", unit " << j << ": h " << read << ", expected " << h[j];
    double dz = 0;
    for (int k = 0; k < kClasses; ++k) dz += dlogits[k] * params[row + k];
    dz = h[j] > 0 ? dz / keep : 0.0;
    if (std::fabs(grad(l1.b + j) - dz) > 1e-6 + 1e-4 * std::fabs(dz) && wrong_db1++ == 0)
      ADD_FAILURE() << "step " << step << ", unit " << j << ": db1 " << grad(l1.b + j)
                    << ", expected " << dz;
  }
  EXPECT_EQ(wrong_h, 0) << "step " << step;
  EXPECT_EQ(wrong_db1, 0) << "step " << step;
  return kept;
}

// Parameters for units_kept_by_training_step: W1 = 0, b1 in [0.25, 0.65].
inline std::vector<float> parameters_passing_every_relu(const ModelLayout& layout) {
  std::vector<float> params = initial_parameters(layout, 2);
  const Layer& l1 = layout.layers[0];
  std::fill_n(params.begin() + std::ptrdiff_t(l1.w), std::size_t(l1.in) * l1.out, 0.0f);
  for (int j = 0; j < l1.out; ++j) params[l1.b + j] = 0.25f + 0.1f * float(j % 5);
  return params;
}

// Consecutive steps draw independent masks: with keep 0.5 they agree on about
// keep^2 + (1 - keep)^2 = half of the units; each is the stream's mask at its own step.
inline void expect_fresh_masks_each_step(Backend& backend, const TrainConfig& c,
                                         const MnistData& data) {
  const ModelLayout layout = make_layout(c.model, c.hidden_units);
  const std::vector<float> params = parameters_passing_every_relu(layout);
  backend.set_epoch_order(0, epoch_order(c.seed, 0, data.train.count));
  const int units = layout.layers[0].out;
  for (std::int64_t step : {0, 37}) {
    const auto now = units_kept_by_training_step(backend, c, data, params, step);
    const auto next = units_kept_by_training_step(backend, c, data, params, step + 1);
    int agree = 0, kept = 0, off_stream = 0;
    for (int j = 0; j < units; ++j) {
      agree += now[j] == next[j];
      kept += now[j];
      off_stream +=
          now[j] != (dropout_uniform(c.seed, std::uint64_t(step), std::uint32_t(j)) < c.keep_prob);
    }
    EXPECT_EQ(off_stream, 0) << "step " << step;
    EXPECT_NEAR(double(kept) / units, 0.5, 0.1) << "step " << step;
    EXPECT_NEAR(double(agree) / units, 0.5, 0.15) << "steps " << step << " and " << step + 1;
  }
}

}  // namespace mnist::dropout_test
