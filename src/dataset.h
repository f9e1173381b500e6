// The three MNIST splits, kept as bytes (28x28 pixels 0..255, labels 0..9): the GPU holds them
// this way too and normalises to [0,1] inside its kernels.
#pragma once

#include <cstdint>
#include <ostream>
#include <vector>

#include "download.h"

namespace mnist {

constexpr int kImagePixels = 28 * 28;

struct Dataset {
  int count = 0;
  std::vector<std::uint8_t> images;  // count * kImagePixels
  std::vector<std::uint8_t> labels;  // count
};

struct MnistData {
  Dataset train, validation, test;
};

// TF's read_data_sets: the first validation_size training images are held out as validation.
constexpr int kValidationSize = 5000;

// Downloads (or reuses the cache), verifies, inflates, parses and splits.
MnistData load_dataset(const DatasetSpec& spec, const std::string& data_dir,
                       const FetchPolicy& policy, std::ostream& log,
                       int validation_size = kValidationSize);

// Synthetic, learnable data (ten noisy class prototypes), deterministic from the seed; for
// --fake_data and tests. Sizes are smaller than MNIST: 10,000 train, 1,000 validation, 2,000 test.
MnistData make_fake_data(std::uint64_t seed);

}  // namespace mnist
