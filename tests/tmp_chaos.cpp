#include <cstdio>
#include <random>
#include "train/cpu_backend.h"
#include "train/epochs.h"
#include "data/dataset.h"
using namespace mnist;
int main() {
  const MnistData data = make_fake_data(5);
  TrainConfig c; c.model = ModelKind::kMlp; c.batch_size = 100; c.keep_prob = 0.9f; c.seed = 91;
  for (int variant = 0; variant < 3; ++variant) {
    std::vector<float> p = initial_parameters(make_layout(c.model, c.hidden_units), 6);
    std::mt19937 rng(variant);
    if (variant) for (auto& x : p) x = std::nextafter(x, (rng() & 1) ? 1.f : -1.f);
    CpuBackend b(c, data, p);
    EpochFeeder f(b, c.seed, 100, data.train.count);
    for (int s = 0; s < 6; ++s) { f.before_step(); b.train_step(); std::printf("%.7f ", b.last_loss()); }
    std::printf("\n");
  }
}
