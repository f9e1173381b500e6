// The idx format of the MNIST files: big-endian magic (0x0000 08 RANK), RANK big-endian u32 dims,
// then the unsigned-byte payload.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/common/mnist_shape.h"

namespace mnist {

struct IdxImages {
  int count = 0, rows = 0, cols = 0;
  std::vector<std::uint8_t> pixels;  // count * rows * cols, row-major
};

constexpr std::uint32_t kIdxImagesMagic = 2051;  // ubyte, rank 3
constexpr std::uint32_t kIdxLabelsMagic = 2049;  // ubyte, rank 1

// Each throws Error(kDataInvalid) with "NAME: what is wrong" on any malformed input.
IdxImages parse_idx_images(const std::vector<std::uint8_t>& bytes, const std::string& name);
std::vector<std::uint8_t> parse_idx_labels(const std::vector<std::uint8_t>& bytes,
                                           const std::string& name);
void check_counts_agree(const IdxImages& images, const std::vector<std::uint8_t>& labels,
                        const std::string& images_name, const std::string& labels_name);

// Serialisers, the exact inverse of the parsers (the tests build their idx files with them).
std::vector<std::uint8_t> encode_idx_images(const IdxImages& images);
std::vector<std::uint8_t> encode_idx_labels(const std::vector<std::uint8_t>& labels);

}  // namespace mnist
