// TFRecord framing, the container of TensorBoard event files: each record is
//   uint64 length (little-endian) | uint32 masked CRC-32C of those 8 bytes | data |
//   uint32 masked CRC-32C of data
// so a reader can tell a record cut short by a live writer from a damaged one.
#pragma once

#include <string>
#include <string_view>

namespace mnist {

// The framed record holding `data`.
std::string tfrecord_frame(std::string_view data);

}  // namespace mnist
