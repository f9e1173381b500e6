// The model's parameters and hyper-parameters, independent of where the maths runs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/common/mnist_shape.h"
#include "train/config.h"

namespace mnist {

// All parameters live in one flat float array (so one Adam rule covers everything, layer by layer
// or all at once, and a checkpoint is one blob): for each layer, W (in x out, row-major) then b.
struct Layer {
  int in = 0, out = 0;
  std::size_t w = 0, b = 0;  // offsets into the flat array
};

struct ModelLayout {
  std::vector<Layer> layers;  // mlp: 784->hidden->10; softmax: 784->10
  std::size_t total = 0;
  int hidden() const { return layers.size() > 1 ? layers[0].out : 0; }
};

ModelLayout make_layout(ModelKind model, int hidden_units);

// Adam as in TF's AdamOptimizer (bias correction folded into the step size, epsilon "hat").
constexpr float kAdamBeta1 = 0.9f;
constexpr float kAdamBeta2 = 0.999f;
constexpr float kAdamEpsilon = 1e-8f;

// TF sample initialisation: weights truncated normal (stddev 0.1, redrawn beyond 2 stddev),
// biases 0.1. Deterministic from the seed, on every platform.
std::vector<float> initial_parameters(const ModelLayout& layout, std::uint64_t seed);

// Everything that training changes; what a checkpoint holds.
struct TrainState {
  std::vector<float> params, adam_m, adam_v;
  // Training steps taken: the next step's index in the sample stream and its dropout counter;
  // Adam's t for a step is this count once the step is counted (kernels/adam_rule.cuh).
  std::int64_t step = 0;
};

}  // namespace mnist
