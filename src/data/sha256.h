// SHA-256, to verify every data file before it is used.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mnist {

// Lower-case hex SHA-256 of a byte buffer (OpenSSL's EVP digest).
std::string sha256_hex(const std::vector<std::uint8_t>& bytes);

}  // namespace mnist
