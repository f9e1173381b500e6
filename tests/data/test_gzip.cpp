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
    EXPECT_EQ(e.code(), ExitCode::kDataInvalid);
    return e.what();
  }
  return "no error";
}

std::string gunzip_error_limited(const std::vector<std::uint8_t>& gz, std::size_t limit) {
  try {
    gunzip(gz, "x.gz", limit);
  } catch (const Error& e) {
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

std::vector<std::uint8_t> concat(std::vector<std::uint8_t> a, const std::vector<std::uint8_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST(Gzip, InflatesEveryMemberOfAMultiMemberStream) {
  const auto first = sample(70000), second = sample(1234);
  const auto both = concat(first, second);
  EXPECT_EQ(gunzip(concat(gzip(first), gzip(second)), "x.gz"), both);  // as `cat a.gz b.gz`
  EXPECT_EQ(gunzip(concat(concat(gzip(first), gzip({})), gzip(second)), "x.gz"), both);
}

TEST(Gzip, RejectsAFaultInAnyMember) {
  const auto one = gzip(sample(5000)), two = gzip(sample(3000));
  EXPECT_NE(gunzip_error(concat(concat(one, two), {0})).find("1 trailing bytes"),
            std::string::npos);
  EXPECT_NE(gunzip_error(concat(one, {0x1f, 0x8b})).find("2 trailing bytes"), std::string::npos);
  auto truncated = concat(one, two);
  truncated.resize(truncated.size() - 10);
  EXPECT_NE(gunzip_error(truncated).find("truncated"), std::string::npos);
  auto bad_crc = concat(one, two);
  bad_crc[bad_crc.size() - 6] ^= 0xff;  // the second member's CRC32
  EXPECT_NE(gunzip_error(bad_crc).find("x.gz: not a valid gzip file"), std::string::npos);
  auto garbage = concat(one, {0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  EXPECT_NE(gunzip_error(garbage).find("x.gz: not a valid gzip file"), std::string::npos);
}

TEST(Gzip, OutputLimitCountsAllMembers) {
  const auto half = std::vector<std::uint8_t>(600, 0);
  EXPECT_EQ(gunzip(concat(gzip(half), gzip(half)), "x.gz", 1200).size(), 1200u);
  EXPECT_NE(gunzip_error_limited(concat(gzip(half), gzip(half)), 1199).find("size limit"),
            std::string::npos);
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
