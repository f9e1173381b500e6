// PNG (ISO/IEC 15948, www.w3.org/TR/png): the signature, then chunks IHDR, IDAT, IEND, each
//   uint32 length (big-endian) | 4-byte type | data | CRC-32 (zlib's crc32) of type and data.
// Filter type 0 (none) on every row: the images are a few 28x28 digits, where better filtering
// would save a few dozen bytes.
#include "summary/png.h"

#include <zlib.h>

#include <string>

#include "error.h"

namespace mnist {
namespace {

void append_be32(std::string& out, std::uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((value >> shift) & 0xFFu));
}

void append_chunk(std::string& png, const char type[4], const std::string& data) {
  append_be32(png, static_cast<std::uint32_t>(data.size()));
  const std::size_t type_at = png.size();
  png.append(type, 4);
  png.append(data);
  const auto* typed = reinterpret_cast<const Bytef*>(png.data() + type_at);
  append_be32(png, static_cast<std::uint32_t>(
                       ::crc32(::crc32(0L, Z_NULL, 0), typed, static_cast<uInt>(4 + data.size()))));
}

// PNG's colour type for 1-4 channels of 8-bit samples.
int colour_type(int channels) {
  static const int kTypes[] = {0, 4, 2, 6};  // grey, grey + alpha, RGB, RGBA
  return kTypes[channels - 1];
}

}  // namespace

std::string encode_png(const std::uint8_t* pixels, int width, int height, int channels) {
  // Bounded well inside PNG's 2^31 - 1 and zlib's uLong: a summary image is small.
  constexpr long kMaxSide = 1 << 15;
  if (width <= 0 || height <= 0 || width > kMaxSide || height > kMaxSide || channels < 1 ||
      channels > 4) {
    throw Error(ExitCode::kInternal, "encode_png: cannot encode a " + std::to_string(width) + "x" +
                                         std::to_string(height) + " image of " +
                                         std::to_string(channels) + " channels");
  }
  const std::size_t row_bytes =
      static_cast<std::size_t>(width) * static_cast<std::size_t>(channels);

  std::string ihdr;
  append_be32(ihdr, static_cast<std::uint32_t>(width));
  append_be32(ihdr, static_cast<std::uint32_t>(height));
  ihdr.push_back(8);  // bit depth
  ihdr.push_back(static_cast<char>(colour_type(channels)));
  ihdr.push_back(0);  // compression: deflate
  ihdr.push_back(0);  // filter method 0
  ihdr.push_back(0);  // no interlace

  // Each row is its filter type byte (0: none) followed by the row's samples.
  std::string filtered;
  filtered.reserve((row_bytes + 1) * static_cast<std::size_t>(height));
  for (int y = 0; y < height; ++y) {
    filtered.push_back(0);
    filtered.append(reinterpret_cast<const char*>(pixels) + static_cast<std::size_t>(y) * row_bytes,
                    row_bytes);
  }
  // zlib with a small window and memory level: the summaries' images are about 800 bytes, and
  // compress2's default state (~270 KB, set up on every call) would cost more than the deflating.
  z_stream z{};
  if (::deflateInit2(&z, Z_BEST_SPEED, Z_DEFLATED, /*windowBits=*/10, /*memLevel=*/4,
                     Z_DEFAULT_STRATEGY) != Z_OK)
    throw Error(ExitCode::kInternal, "encode_png: zlib deflateInit2 failed");
  std::string idat(::deflateBound(&z, static_cast<uLong>(filtered.size())), '\0');
  z.next_in = reinterpret_cast<Bytef*>(filtered.data());
  z.avail_in = static_cast<uInt>(filtered.size());
  z.next_out = reinterpret_cast<Bytef*>(idat.data());
  z.avail_out = static_cast<uInt>(idat.size());
  const int rc = ::deflate(&z, Z_FINISH);
  const uLong compressed_size = z.total_out;
  ::deflateEnd(&z);
  if (rc != Z_STREAM_END)
    throw Error(ExitCode::kInternal, "encode_png: zlib deflate failed: " + std::to_string(rc));
  idat.resize(compressed_size);

  std::string png("\x89PNG\r\n\x1a\n", 8);
  append_chunk(png, "IHDR", ihdr);
  append_chunk(png, "IDAT", idat);
  append_chunk(png, "IEND", "");
  return png;
}

}  // namespace mnist
