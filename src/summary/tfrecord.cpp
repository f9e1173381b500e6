// TFRecord framing (see tfrecord.h). Integers are written byte by byte, so the file is the same on
// any host byte order.
#include "summary/tfrecord.h"

#include <cstdint>

#include "summary/crc32c.h"

namespace mnist {
namespace {

void append_le(std::string& out, std::uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xFFu));
}

}  // namespace

std::string tfrecord_frame(std::string_view data) {
  std::string record;
  record.reserve(data.size() + 16);
  append_le(record, data.size(), 8);
  append_le(record, mask_crc32c(crc32c(record.data(), 8)), 4);
  record.append(data);
  append_le(record, mask_crc32c(crc32c(data)), 4);
  return record;
}

}  // namespace mnist
