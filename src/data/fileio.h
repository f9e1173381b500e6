// Whole-file reads and atomic writes, for the data cache and checkpoints.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mnist {

// Reads a whole file; throws Error(kDataUnavailable) naming the path on failure.
std::vector<std::uint8_t> read_file(const std::string& path);

// Writes `path.part`, fsyncs it, renames it over `path` and fsyncs the directory, so `path` is
// either the old content or the complete new one, never a partial file.
void write_file_atomically(const std::string& path, const std::vector<std::uint8_t>& bytes);

}  // namespace mnist
