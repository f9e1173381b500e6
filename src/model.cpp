#include "model.h"

#include <cmath>
#include <numeric>
#include <random>

namespace mnist {

ModelLayout make_layout(ModelKind model, int hidden_units) {
  ModelLayout layout;
  std::vector<int> widths = {kInputs};
  if (model == ModelKind::kMlp) widths.push_back(hidden_units);
  widths.push_back(kClasses);
  for (std::size_t i = 0; i + 1 < widths.size(); ++i) {
    Layer l;
    l.in = widths[i];
    l.out = widths[i + 1];
    l.w = layout.total;
    l.b = l.w + std::size_t(l.in) * l.out;
    layout.total = l.b + l.out;
    layout.layers.push_back(l);
  }
  return layout;
}

namespace {

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// 53-bit uniform in (0, 1), platform-independent (std:: distributions are not).
double uniform_open(std::mt19937_64& rng) {
  return (double(rng() >> 11) + 0.5) / 9007199254740992.0;
}

}  // namespace

std::vector<float> initial_parameters(const ModelLayout& layout, std::uint64_t seed) {
  constexpr double kStddev = 0.1;
  constexpr float kBias = 0.1f;
  std::mt19937_64 rng(splitmix64(seed));
  std::vector<float> p(layout.total);
  for (const Layer& l : layout.layers) {
    for (std::size_t i = 0; i < std::size_t(l.in) * l.out; ++i) {
      double z;
      do {  // Box-Muller; redraw outside two standard deviations
        z = std::sqrt(-2.0 * std::log(uniform_open(rng))) *
            std::cos(2.0 * M_PI * uniform_open(rng));
      } while (std::fabs(z) > 2.0);
      p[l.w + i] = static_cast<float>(z * kStddev);
    }
    std::fill(p.begin() + l.b, p.begin() + l.b + l.out, kBias);
  }
  return p;
}

std::vector<std::int32_t> epoch_order(std::uint64_t seed, std::int64_t epoch, int count) {
  std::vector<std::int32_t> order(count);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(splitmix64(splitmix64(seed) ^ static_cast<std::uint64_t>(epoch)));
  for (int i = count - 1; i > 0; --i) {  // Fisher-Yates with a portable bounded draw
    const auto j = static_cast<int>(rng() % static_cast<std::uint64_t>(i + 1));
    std::swap(order[i], order[j]);
  }
  return order;
}

}  // namespace mnist
