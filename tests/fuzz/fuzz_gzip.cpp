// Fuzzes the gzip reader (src/data/gzip.h) with a small output cap, as a download's expected size
// bounds it: any bytes either inflate to at most the cap or are refused with mnist::Error (never a
// crash, a hang or unbounded memory). What inflates must survive a gzip round trip.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "data/gzip.h"
#include "error.h"
#include "fuzz_support.h"

namespace {
constexpr std::size_t kMaxOutput = std::size_t{1} << 16;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::vector<std::uint8_t> gz(data, data + size);
  std::vector<std::uint8_t> raw;
  try {
    raw = mnist::gunzip(gz, "fuzz.gz", kMaxOutput);
  } catch (const mnist::Error&) {
    return 0;
  }
  mnist::fuzz::require(raw.size() <= kMaxOutput, "output within the cap");
  mnist::fuzz::require(mnist::gunzip(mnist::gzip(raw), "again.gz", kMaxOutput) == raw,
                       "gzip round trip");
  return 0;
}
