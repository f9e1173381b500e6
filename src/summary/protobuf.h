// A minimal protobuf (wire format) encoder for the few messages the summaries write, so the program
// needs no protobuf library. Field order and omissions follow what protobuf's own serializer
// emits for proto3: the `*_nonzero` helpers leave out a scalar equal to its default (the same
// bits as +0), as a proto3 field outside a oneof is; a oneof member (simple_value, image, ...) is
// always written, even when zero, or the reader would see no value at all.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mnist {

// Appends `value` as a base-128 varint (negative int32/int64 values: pass them converted to
// uint64, which gives the 10-byte two's-complement form protobuf uses).
void append_varint(std::string& out, std::uint64_t value);

// One message being encoded: call the field methods in field-number order, then take bytes().
class ProtoWriter {
 public:
  // Wire type 0: int32, int64, uint32, uint64, bool, enum.
  void varint(int field, std::uint64_t value);
  void int64(int field, std::int64_t value) { varint(field, static_cast<std::uint64_t>(value)); }
  void int64_nonzero(int field, std::int64_t value) {
    if (value != 0) int64(field, value);
  }
  // Wire type 1 (double) and 5 (float), little-endian IEEE 754.
  void double_field(int field, double value);
  void double_nonzero(int field, double value);
  void float_field(int field, float value);
  // Wire type 2: string, bytes, an embedded message, a packed repeated field.
  void bytes(int field, std::string_view value);
  void bytes_nonempty(int field, std::string_view value) {
    if (!value.empty()) bytes(field, value);
  }
  void message(int field, const ProtoWriter& sub) { bytes(field, sub.bytes()); }
  // A packed `repeated double` (proto3's default for repeated scalars); nothing when empty.
  void packed_doubles(int field, const std::vector<double>& values);

  const std::string& bytes() const { return bytes_; }

 private:
  void tag(int field, int wire_type);
  std::string bytes_;
};

}  // namespace mnist
