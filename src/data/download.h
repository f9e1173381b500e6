// Fetching the data files: ordered mirrors, retries with capped back-off, SHA-256 verification,
// and a cache that concurrent processes share (a folder lock, a unique temporary per writer,
// rename only after verification) so a bad or partial file never sits under its final name and
// each file is downloaded once. Downloads are bounded in size and time and stop on SIGTERM/SIGINT.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "data/catalog.h"

namespace mnist {

struct FetchPolicy {
  std::vector<std::string> mirrors;  // base URLs (http, https or file), tried in order
  double timeout_s = 120.0;          // per attempt
  int attempts = 3;                  // per mirror, for retryable failures
  double backoff_s = 1.0;            // first pause; doubles after each failed attempt, up to 10 s
  bool show_progress = false;        // a progress line on stderr (only meant for a TTY)
};

// The bounds fetch_verified holds a policy to (the command line checks its flags against them).
constexpr double kMinDownloadTimeoutS = 0.001;
constexpr double kMaxDownloadTimeoutS = 24 * 3600.0;
constexpr int kMaxDownloadAttempts = 100;
constexpr double kMaxDownloadBackoffS = 10.0;

// Throws Error(kBadArguments) naming the field when a number is not finite or out of range.
void validate_fetch_policy(const FetchPolicy& policy);

// Where fetch_verified found a file, for the verdict and the final summary line.
struct FetchReport {
  std::string source;                  // the cached file's path, or the URL that delivered the copy
  bool downloaded = false;             // false: the cache already held a valid copy
  std::uint64_t downloaded_bytes = 0;  // size of the copy downloaded (compressed, as sent)
  double download_seconds = 0;  // time spent downloading (every mirror and attempt, verifying)
};

// Returns the verified, inflated content of `file`, from data_dir/<name> when it is there and
// valid, else downloaded and cached there. Concurrent callers (processes or threads) sharing
// data_dir take turns on data_dir/.lock: one downloads, the others then reuse its copy. Anything
// but a regular file under the name (a folder, link, FIFO, device) is reported and replaced,
// never followed or read. Prints the TF sample's "Successfully downloaded" and "Extracting" lines
// to `log`. When no mirror gives a valid copy, throws Error naming the file and each mirror's
// failure: kDataInvalid when the mirrors answered with corrupt copies and none failed in a way
// that may pass, else kDataUnavailable. Throws Error(kBadArguments) for an invalid policy, and
// Error(kTerminated/kInterrupted) within about a second of a stop request (stop.h). With
// `report`, says where the copy came from. With policy.show_progress, a download shows its
// progress on the status line (progress.h), cleared before anything else is printed.
std::vector<std::uint8_t> fetch_verified(const DataFileSpec& file, const std::string& data_dir,
                                         const FetchPolicy& policy, std::ostream& log,
                                         FetchReport* report = nullptr);

}  // namespace mnist
