// The protobuf wire format (developers.google.com/protocol-buffers/docs/encoding). Fixed-width
// values are written byte by byte from their bit pattern, so the output does not depend on the
// host's byte order.
#include "summary/protobuf.h"

#include <cstring>

namespace mnist {
namespace {

enum WireType { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

void append_le(std::string& out, std::uint64_t bits, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((bits >> (8 * i)) & 0xFFu));
}

std::uint64_t bits_of(double value) {
  std::uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}

}  // namespace

void append_varint(std::string& out, std::uint64_t value) {
  while (value >= 0x80u) {
    out.push_back(static_cast<char>((value & 0x7Fu) | 0x80u));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

void ProtoWriter::tag(int field, int wire_type) {
  append_varint(bytes_,
                (static_cast<std::uint64_t>(field) << 3) | static_cast<unsigned>(wire_type));
}

void ProtoWriter::varint(int field, std::uint64_t value) {
  tag(field, kVarint);
  append_varint(bytes_, value);
}

void ProtoWriter::double_field(int field, double value) {
  tag(field, kFixed64);
  append_le(bytes_, bits_of(value), 8);
}

void ProtoWriter::double_nonzero(int field, double value) {
  if (bits_of(value) != 0) double_field(field, value);  // -0.0 is not the default: written
}

void ProtoWriter::float_field(int field, float value) {
  std::uint32_t bits = 0;
  std::memcpy(&bits, &value, sizeof bits);
  tag(field, kFixed32);
  append_le(bytes_, bits, 4);
}

void ProtoWriter::bytes(int field, std::string_view value) {
  tag(field, kLengthDelimited);
  append_varint(bytes_, value.size());
  bytes_.append(value);
}

void ProtoWriter::packed_doubles(int field, const std::vector<double>& values) {
  if (values.empty()) return;
  tag(field, kLengthDelimited);
  append_varint(bytes_, values.size() * 8);
  for (double v : values) append_le(bytes_, bits_of(v), 8);
}

}  // namespace mnist
