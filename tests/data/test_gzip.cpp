#include <gtest/gtest.h>

#include "data/gzip.h"
#include "data/sha256.h"
#include "error.h"

namespace mnist {
namespace {

std::vector<std::uint8_t> sample(std::size_t n) {
  std::vector<std::uint8_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>((i * 31) ^ (i >> 7));
  return v;
}

std::string gunzip_error(const std::vector<std::uint8_t>& gz) {
  try {
    gunzip(gz, "x.gz");
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kDataUnavailable);
    return e.what();
  }
  return "no error";
}

TEST(Gzip, RoundTripsLargerThanOneChunk) {
  const auto raw = sample(300000);
  EXPECT_EQ(gunzip(gzip(raw), "x.gz"), raw);
}

TEST(Gzip, RejectsEmptyInput) {
  EXPECT_NE(gunzip_error({}).find("x.gz: not a valid gzip file: empty"), std::string::npos);
}

TEST(Gzip, RejectsGarbage) {
  EXPECT_NE(gunzip_error(sample(1000)).find("x.gz: not a valid gzip file"), std::string::npos);
}

TEST(Gzip, RejectsTruncatedStream) {
  auto gz = gzip(sample(5000));
  gz.resize(gz.size() / 2);
  EXPECT_NE(gunzip_error(gz).find("truncated"), std::string::npos);
  auto no_trailer = gzip(sample(5000));
  no_trailer.resize(no_trailer.size() - 4);  // CRC present, length missing
  EXPECT_NE(gunzip_error(no_trailer).find("x.gz"), std::string::npos);
}

TEST(Gzip, RejectsCorruptCrc) {
  auto gz = gzip(sample(5000));
  gz[gz.size() - 6] ^= 0xff;  // inside the CRC32 of the trailer
  EXPECT_NE(gunzip_error(gz).find("x.gz: not a valid gzip file"), std::string::npos);
}

TEST(Gzip, RejectsTrailingBytes) {
  auto gz = gzip(sample(100));
  gz.push_back(0);
  EXPECT_NE(gunzip_error(gz).find("1 trailing bytes"), std::string::npos);
}

TEST(Gzip, EnforcesOutputLimit) {
  EXPECT_THROW(gunzip(gzip(std::vector<std::uint8_t>(100000, 0)), "x.gz", 1000), Error);
}

TEST(Sha256, MatchesKnownVectors) {
  EXPECT_EQ(sha256_hex({}), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  const std::string abc = "abc";
  EXPECT_EQ(sha256_hex(std::vector<std::uint8_t>(abc.begin(), abc.end())),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace
}  // namespace mnist
