// Fuzzes the checkpoint reader (src/train/checkpoint.h): decode_checkpoint must refuse any bytes
// with mnist::Error or return a checkpoint that is consistent with itself. The file ends with a
// SHA-256 of everything before it, so a random mutation almost never gets past the checksum: each
// input is therefore decoded twice, as it is and with its last 32 bytes replaced by the right
// digest, so the header and body checks see mutated content too.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "data/sha256.h"
#include "error.h"
#include "fuzz_support.h"
#include "train/checkpoint.h"

namespace {

using Bytes = std::vector<std::uint8_t>;
constexpr std::size_t kDigestBytes = 32;

// `bytes` with the trailing digest recomputed over everything before it.
Bytes with_valid_digest(Bytes bytes) {
  const Bytes body(bytes.begin(), bytes.end() - kDigestBytes);
  const std::string hex = mnist::sha256_hex(body);
  auto nibble = [](char h) { return h <= '9' ? h - '0' : h - 'a' + 10; };
  for (std::size_t i = 0; i < kDigestBytes; ++i) {
    bytes[body.size() + i] =
        static_cast<std::uint8_t>(nibble(hex[2 * i]) * 16 + nibble(hex[2 * i + 1]));
  }
  return bytes;
}

// What every accepted checkpoint must satisfy.
void check_accepted(const mnist::Checkpoint& c) {
  using mnist::fuzz::require;
  const std::size_t n = c.state.params.size();
  require(c.state.adam_m.size() == n && c.state.adam_v.size() == n, "moments match parameters");
  require(c.iteration >= 0 && c.state.step >= 0 && c.state.step <= c.iteration,
          "0 <= step <= iteration");
  require(c.hidden_units > 0 && c.batch_size > 0, "positive sizes");
  const mnist::Checkpoint again = mnist::decode_checkpoint(mnist::encode_checkpoint(c), "again");
  require(again.iteration == c.iteration && again.state.step == c.state.step &&
              again.state.params == c.state.params && again.state.adam_v == c.state.adam_v &&
              again.model == c.model && again.dataset == c.dataset && again.seed == c.seed,
          "an accepted checkpoint re-encodes to the same checkpoint");

  // The compatibility check reads every identity field: against a default run it either passes
  // or refuses with mnist::Error.
  try {
    mnist::check_compatible(c, mnist::RunConfig{}, n, "fuzz.ckpt");
  } catch (const mnist::Error&) {
  }
}

void decode(const Bytes& bytes) {
  mnist::Checkpoint c;
  try {
    c = mnist::decode_checkpoint(bytes, "fuzz.ckpt");
  } catch (const mnist::Error&) {
    return;
  }
  check_accepted(c);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const Bytes bytes(data, data + size);
  decode(bytes);
  if (size >= kDigestBytes) decode(with_valid_digest(bytes));
  return 0;
}
