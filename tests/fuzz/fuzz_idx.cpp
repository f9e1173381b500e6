// Fuzzes the idx parsers (src/data/idx.h). The input is one idx file, or an images file followed
// by a labels file (split where the labels magic 00 00 08 01 first appears after the start), so
// real files and their concatenations make the seeds. Every part goes through both parsers; when
// an images part and a labels part both parse, check_counts_agree compares them. A file that parses
// must re-encode to exactly its bytes.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "data/idx.h"
#include "error.h"
#include "fuzz_support.h"

namespace {

using Bytes = std::vector<std::uint8_t>;

// Whether `bytes` parse as an images file (into `images`); what parses must re-encode exactly.
bool parse_images(const Bytes& bytes, mnist::IdxImages& images) {
  try {
    images = mnist::parse_idx_images(bytes, "images");
  } catch (const mnist::Error&) {
    return false;
  }
  mnist::fuzz::require(mnist::encode_idx_images(images) == bytes,
                       "images re-encode to their bytes");
  mnist::fuzz::require(
      images.pixels.size() ==
          std::size_t(images.count) * std::size_t(images.rows) * std::size_t(images.cols),
      "pixel count matches the dimensions");
  return true;
}

// Whether `bytes` parse as a labels file (into `labels`).
bool parse_labels(const Bytes& bytes, Bytes& labels) {
  try {
    labels = mnist::parse_idx_labels(bytes, "labels");
  } catch (const mnist::Error&) {
    return false;
  }
  mnist::fuzz::require(mnist::encode_idx_labels(labels) == bytes,
                       "labels re-encode to their bytes");
  for (std::uint8_t label : labels) mnist::fuzz::require(label < 10, "labels are 0..9");
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const Bytes whole(data, data + size);
  mnist::IdxImages images;
  Bytes labels;
  parse_images(whole, images);
  parse_labels(whole, labels);

  static const std::uint8_t kLabelsMagic[] = {0, 0, 8, 1};
  const auto split = std::search(whole.begin() + std::min<std::size_t>(size, 1), whole.end(),
                                 std::begin(kLabelsMagic), std::end(kLabelsMagic));
  if (split == whole.end()) return 0;
  const Bytes first(whole.begin(), split), second(split, whole.end());
  if (parse_images(first, images) && parse_labels(second, labels)) {
    try {
      mnist::check_counts_agree(images, labels, "images", "labels");
      mnist::fuzz::require(std::size_t(images.count) == labels.size(), "agreeing counts are equal");
    } catch (const mnist::Error&) {
      mnist::fuzz::require(std::size_t(images.count) != labels.size(), "equal counts agree");
    }
  }
  return 0;
}
