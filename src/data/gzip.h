// gzip streams through zlib: the downloaded .gz files are inflated (and checked) here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace mnist {

// Inflates a complete gzip stream with zlib; several members one after the other (as `cat a.gz
// b.gz` makes) inflate to their contents in order. Throws Error(kDataInvalid) naming `name`
// when the input is not gzip, is truncated, fails a CRC, has trailing bytes that are not another
// member, or would exceed max_output.
std::vector<std::uint8_t> gunzip(const std::vector<std::uint8_t>& gz, const std::string& name,
                                 std::size_t max_output = std::size_t{256} << 20);

// Compresses to a gzip stream (the tests build their .gz files with it).
std::vector<std::uint8_t> gzip(const std::vector<std::uint8_t>& raw);

}  // namespace mnist
