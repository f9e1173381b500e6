// The data a run trains on, kept as bytes (28x28 pixels 0..255, labels 0..9): the GPU holds them
// this way too and normalises to [0,1] inside its kernels. The one entry point of the data layer:
// load_dataset() looks the dataset up in the catalog, picks the mirrors, fetches and verifies the
// four files (download.h), parses them (idx.h) and splits them.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "kernels/common/mnist_shape.h"

namespace mnist {

struct Dataset {
  int count = 0;
  std::vector<std::uint8_t> images;  // count * kImagePixels
  std::vector<std::uint8_t> labels;  // count
};

// Where a run's data came from, for the verdict (result.json) and the final summary line.
struct DataOrigin {
  std::string dataset;      // "mnist", "fashion-mnist" or "synthetic" (--fake_data)
  std::string description;  // e.g. "cache /tmp/tensorflow/input_data" or the mirror URL(s) used
  std::vector<std::string> sources;  // per file: where it was read or downloaded from
  double fetch_seconds = 0;  // time spent downloading (0 when everything came from the cache)
  std::int64_t downloaded_bytes = 0;
};

struct MnistData {
  Dataset train, validation, test;  // validation: TF's first kValidationSize training images
  DataOrigin origin;
};

// TF's read_data_sets: the first kValidationSize training images are held out as validation
// (they are not trained on). Both built-in datasets have 60,000 training images; --fake_data has
// kFakeTrainImages.
constexpr int kValidationSize = 5000;
constexpr int kTrainImages = 60000 - kValidationSize;
constexpr int kFakeTrainImages = 10000;

// Where a run's data comes from (the data flags).
struct DataSource {
  std::string dataset = "mnist";          // a name in data/datasets.json
  std::string data_dir;                   // the cache
  std::vector<std::string> mirror_flags;  // --mirror; empty: MNIST_MIRROR, else the built-in list
  double timeout_s = 120.0;               // per download attempt
  int attempts = 3;                       // per mirror
  bool show_progress = false;             // a progress line on stderr (a TTY)
};

// Downloads (or reuses the cache), verifies, inflates, parses and splits. Throws
// Error(kDataUnavailable) when no mirror could deliver a file, Error(kDataInvalid) when what
// arrived is corrupt, naming the file and what is wrong.
MnistData load_dataset(const DataSource& source, std::ostream& log);

// Synthetic, learnable data (ten noisy class prototypes), deterministic from the seed; for
// --fake_data and tests. Smaller than MNIST: 10,000 training and 2,000 test images.
MnistData make_fake_data(std::uint64_t seed);

}  // namespace mnist
