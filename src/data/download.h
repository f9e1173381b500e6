// Fetching the data files: ordered mirrors, retries with back-off, SHA-256 verification, and an
// atomic cache (temp name, fsync, rename) so a bad or partial file never sits under its final name.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "data/catalog.h"

namespace mnist {

struct FetchPolicy {
  std::vector<std::string> mirrors;  // base URLs, tried in order
  double timeout_s = 120.0;          // per attempt
  int attempts = 3;                  // per mirror, for retryable failures
  double backoff_s = 1.0;            // first pause; doubles after each failed attempt
  bool show_progress = false;        // a progress line on stderr (only meant for a TTY)
};

// Returns the verified, inflated content of `file`, from data_dir/<name> when it is there and
// valid, else downloaded and cached there. Prints the TF sample's "Successfully downloaded" and
// "Extracting" lines to `log`. Throws Error(kDataUnavailable) naming the file and each mirror's
// failure.
std::vector<std::uint8_t> fetch_verified(const DataFileSpec& file, const std::string& data_dir,
                                         const FetchPolicy& policy, std::ostream& log);

}  // namespace mnist
