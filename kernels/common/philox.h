// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11): a
// counter-based generator, so a dropout mask is a pure function of (seed, step, element). The CPU
// reference and the CUDA kernels include this same code, so both draw identical masks.
#pragma once

#include <cstdint>

#include "host_device.h"

namespace mnist {

struct Philox4 {
  std::uint32_t v[4];
};

MNIST_HD std::uint32_t mulhilo32(std::uint32_t a, std::uint32_t b, std::uint32_t* hi) {
  const std::uint64_t p = static_cast<std::uint64_t>(a) * b;
  *hi = static_cast<std::uint32_t>(p >> 32);
  return static_cast<std::uint32_t>(p);
}

MNIST_HD Philox4 philox4x32_10(Philox4 ctr, std::uint32_t k0, std::uint32_t k1) {
  for (int round = 0; round < 10; ++round) {
    std::uint32_t hi0, hi1;
    const std::uint32_t lo0 = mulhilo32(0xD2511F53u, ctr.v[0], &hi0);
    const std::uint32_t lo1 = mulhilo32(0xCD9E8D57u, ctr.v[2], &hi1);
    ctr = Philox4{{hi1 ^ ctr.v[1] ^ k0, lo1, hi0 ^ ctr.v[3] ^ k1, lo0}};
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return ctr;
}

// One Philox block gives four 32-bit words: the dropout draws of elements 4g .. 4g + 3 of the
// layer at `step` (so a kernel that handles four consecutive elements runs the generator once).
// out[q] is uniform in [0, 1) with 24 random bits.
MNIST_HD void dropout_uniform4(std::uint64_t seed, std::uint64_t step, std::uint32_t group,
                               float (&out)[4]) {
  const Philox4 r =
      philox4x32_10(Philox4{{group, static_cast<std::uint32_t>(step),
                             static_cast<std::uint32_t>(step >> 32), 0x0d0du}},
                    static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32));
  for (int q = 0; q < 4; ++q) out[q] = static_cast<float>(r.v[q] >> 8) * (1.0f / 16777216.0f);
}

// Inverted dropout of one activation: kept (its draw u below keep) and scaled by 1 / keep, or zero.
MNIST_HD float dropout_keep_scaled(float v, float u, float keep) {
  return u < keep ? v / keep : 0.0f;
}

// The draw of element `index` alone: word index % 4 of group index / 4.
MNIST_HD float dropout_uniform(std::uint64_t seed, std::uint64_t step, std::uint32_t index) {
  float u[4];
  dropout_uniform4(seed, step, index / 4, u);
  return u[index % 4];
}

}  // namespace mnist
