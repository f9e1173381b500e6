#include "train/epochs.h"

#include <algorithm>
#include <numeric>
#include <random>

#include "kernels/common/sample_stream.h"
#include "train/random.h"

namespace mnist {

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

void EpochFeeder::before_step() {
  const std::int64_t step = backend_.steps_taken();
  const std::int64_t first = stream_position(step, batch_, 0, train_count_).epoch;
  const std::int64_t last = stream_position(step, batch_, batch_ - 1, train_count_).epoch;
  for (std::int64_t e = std::max(provided_ + 1, first); e <= last; ++e)
    backend_.set_epoch_order(e, epoch_order(seed_, e, train_count_));
  provided_ = std::max(provided_, last);
}

}  // namespace mnist
