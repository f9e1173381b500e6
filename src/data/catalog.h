// What the program knows about each dataset before fetching it: the four file names, their
// accepted SHA-256 hashes and sizes, and the mirrors (data/datasets.json, compiled in), plus the
// rule that picks the mirror list for a run.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mnist {

struct DataFileSpec {
  std::string name;                 // e.g. train-images-idx3-ubyte.gz
  std::vector<std::string> sha256;  // accepted: the .gz file's hash or the inflated content's
  std::uint64_t raw_size = 0;       // the inflated idx file's exact size; 0: not known

  // The most bytes the inflated content may have: raw_size, or a generous default when unknown.
  std::uint64_t max_raw_bytes() const;
  // The most bytes any valid .gz of this file can have (a download or a cached copy): even a
  // gzip that stores the content uncompressed fits, a planted or endless file does not.
  std::uint64_t max_gz_bytes() const;
};

struct DatasetSpec {
  std::string name;
  std::vector<std::string> mirrors;
  DataFileSpec train_images, train_labels, test_images, test_labels;
};

// The built-in description of "mnist" or "fashion-mnist". Throws Error(kBadArguments) for
// another name.
DatasetSpec builtin_dataset_spec(const std::string& name);

// Mirror list precedence: --mirror flags, else MNIST_MIRROR (comma-separated), else the defaults;
// without --mirror, a non-empty folder named by MNIST_BAKED_DATA (an image's baked copy) goes
// first.
std::vector<std::string> resolve_mirrors(const std::vector<std::string>& flags,
                                         const std::vector<std::string>& defaults);

}  // namespace mnist
