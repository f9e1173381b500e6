// CRC-32C (Castagnoli, the iSCSI checksum of RFC 3720), which TFRecord framing uses, and the
// "masked" form TFRecord stores (a CRC of data that itself holds CRCs is weak, so it is rotated
// and offset first).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace mnist {

// CRC-32C of `size` bytes, continuing from `crc` (0 to start): crc32c(ab) ==
// crc32c(b, crc32c(a)).
std::uint32_t crc32c(const void* data, std::size_t size, std::uint32_t crc = 0);
inline std::uint32_t crc32c(std::string_view bytes) { return crc32c(bytes.data(), bytes.size()); }

// TFRecord's mask: ((crc >> 15) | (crc << 17)) + 0xa282ead8.
std::uint32_t mask_crc32c(std::uint32_t crc);

}  // namespace mnist
