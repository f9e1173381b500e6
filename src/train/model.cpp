#include "train/model.h"

#include <algorithm>
#include <cmath>

#include "train/random.h"

namespace mnist {

ModelLayout make_layout(ModelKind model, int hidden_units) {
  ModelLayout layout;
  std::vector<int> widths = {kImagePixels};
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

}  // namespace mnist
