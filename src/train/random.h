// Portable seeded randomness for initialisation and shuffling: the same numbers on every platform
// and standard library (std:: distributions differ between them).
#pragma once

#include <cstdint>
#include <random>

namespace mnist {

inline std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// 53-bit uniform in (0, 1).
inline double uniform_open(std::mt19937_64& rng) {
  return (double(rng() >> 11) + 0.5) / 9007199254740992.0;
}

}  // namespace mnist
