#include <gtest/gtest.h>

#include "data/idx.h"
#include "error.h"

namespace mnist {
namespace {

IdxImages tiny_images(int count) {
  IdxImages im;
  im.count = count;
  im.rows = im.cols = 28;
  im.pixels.resize(std::size_t(count) * 784);
  for (std::size_t i = 0; i < im.pixels.size(); ++i)
    im.pixels[i] = static_cast<std::uint8_t>(i * 7);
  return im;
}

// Runs `fn`, expecting Error(kDataInvalid) whose message names the file and contains `fault`.
template <typename Fn>
void expect_data_error(Fn fn, const std::string& fault) {
  try {
    fn();
    FAIL() << "no error; expected: " << fault;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kDataInvalid);
    const std::string what = e.what();
    EXPECT_EQ(what.rfind("f.idx: ", 0), 0u) << what;
    EXPECT_NE(what.find(fault), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << "one line: " << what;
  }
}

TEST(Idx, RoundTripsImagesAndLabels) {
  const IdxImages im = tiny_images(3);
  const IdxImages back = parse_idx_images(encode_idx_images(im), "f.idx");
  EXPECT_EQ(back.count, 3);
  EXPECT_EQ(back.pixels, im.pixels);
  const std::vector<std::uint8_t> labels = {0, 9, 4};
  EXPECT_EQ(parse_idx_labels(encode_idx_labels(labels), "f.idx"), labels);
}

TEST(Idx, RejectsEmptyFile) {
  expect_data_error([] { parse_idx_images({}, "f.idx"); }, "too short");
  expect_data_error([] { parse_idx_labels({}, "f.idx"); }, "too short");
}

TEST(Idx, RejectsWrongMagic) {
  auto labels = encode_idx_labels({1, 2});
  expect_data_error([&] { parse_idx_images(labels, "f.idx"); }, "magic number 2049, expected 2051");
  auto images = encode_idx_images(tiny_images(1));
  expect_data_error([&] { parse_idx_labels(images, "f.idx"); }, "magic number 2051, expected 2049");
}

TEST(Idx, RejectsWrongRank) {
  auto b = encode_idx_images(tiny_images(1));
  b[3] = 2;  // rank byte
  expect_data_error([&] { parse_idx_images(b, "f.idx"); }, "magic number 2050");
}

TEST(Idx, RejectsWrongDims) {
  IdxImages im = tiny_images(1);
  im.rows = 27;
  im.pixels.resize(27 * 28);
  expect_data_error([&] { parse_idx_images(encode_idx_images(im), "f.idx"); },
                    "27x28, expected 28x28");
}

TEST(Idx, RejectsTruncatedHeaderAndPayload) {
  auto b = encode_idx_images(tiny_images(2));
  auto header_cut = std::vector<std::uint8_t>(b.begin(), b.begin() + 10);
  expect_data_error([&] { parse_idx_images(header_cut, "f.idx"); }, "truncated header");
  b.pop_back();
  expect_data_error([&] { parse_idx_images(b, "f.idx"); }, "(truncated)");
}

TEST(Idx, RejectsTrailingBytes) {
  auto b = encode_idx_labels({1, 2, 3});
  b.push_back(0);
  expect_data_error([&] { parse_idx_labels(b, "f.idx"); }, "(trailing bytes)");
}

TEST(Idx, RejectsLabelTen) {
  expect_data_error(
      [] {
        parse_idx_labels(encode_idx_labels({1, 10, 3}), "f.idx");
      },
      "label 10 at index 1");
}

TEST(Idx, RejectsCountMismatch) {
  expect_data_error(
      [] {
        check_counts_agree(tiny_images(3), {1, 2}, "f.idx", "l.idx");
      },
      "has 3 images but l.idx has 2 labels");
}

TEST(Idx, RejectsHugeDimensionsWithoutAllocating) {
  std::vector<std::uint8_t> b = {0, 0, 8, 3, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 28, 0, 0, 0, 28};
  expect_data_error([&] { parse_idx_images(b, "f.idx"); }, "dimensions too large");
}

TEST(Idx, NeverCrashesOnRandomBytes) {
  std::uint32_t x = 12345;
  for (int trial = 0; trial < 2000; ++trial) {
    std::vector<std::uint8_t> b(trial % 64);
    for (auto& v : b) v = static_cast<std::uint8_t>((x = x * 1664525u + 1013904223u) >> 24);
    if (trial % 3 == 0 && b.size() >= 4) b[2] = 8, b[3] = static_cast<std::uint8_t>(trial % 5);
    try {
      parse_idx_images(b, "f.idx");
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ExitCode::kDataInvalid);
    }
    try {
      parse_idx_labels(b, "f.idx");
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ExitCode::kDataInvalid);
    }
  }
}

}  // namespace
}  // namespace mnist
