#include "data/download.h"

#include <curl/curl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <sstream>
#include <thread>

#include "data/fileio.h"
#include "data/gzip.h"
#include "data/sha256.h"
#include "error.h"
#include "progress.h"
#include "stop.h"
#include "watchdog.h"

namespace mnist {

namespace fs = std::filesystem;

namespace {

// A transfer slower than this for kStallWindowS (or the whole timeout, when shorter) has stalled:
// it fails the attempt instead of holding the process until the full timeout.
constexpr long kStallBytesPerS = 1024;
constexpr double kStallWindowS = 30.0;
constexpr double kMaxConnectTimeoutS = 30.0;
constexpr long kMaxRedirects = 5;
constexpr int kStopPollMs = 100;  // how often a transfer checks the stop request, at least
// Mirrors may be any of these; a redirect may only lead to the first two (a server must not send
// the download to a local file or another protocol).
constexpr const char* kMirrorProtocols = "http,https,file";
constexpr const char* kRedirectProtocols = "http,https";

struct CurlGlobal {  // curl_global_init once per process, before any thread could race it
  CurlGlobal() { curl_global_init(CURL_GLOBAL_DEFAULT); }
  ~CurlGlobal() { curl_global_cleanup(); }
};

using CurlHandle = std::unique_ptr<CURL, decltype(&curl_easy_cleanup)>;
using CurlMultiHandle = std::unique_ptr<CURLM, decltype(&curl_multi_cleanup)>;

struct Attempt {
  bool ok = false;
  bool retryable = false;
  std::string error;
  std::vector<std::uint8_t> body;
  bool invalid_copy = false;  // the mirror answered with bytes that are no valid copy of the file
};

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// What libcurl's callbacks share: the body, held to a bound, and the progress line's name.
struct Transfer {
  Transfer(const std::string& file_name, bool show, std::uint64_t max)
      : name(file_name), show_progress(show), max_bytes(max) {}

  const std::string& name;
  bool show_progress;
  std::uint64_t max_bytes;
  bool too_large = false;
  std::vector<std::uint8_t> body;
  Clock::time_point start = Clock::now();
};

// ">> Downloading NAME 45.2% 4.3/9.9 MB 12.1 MB/s" (kB for files under a megabyte; without the
// percentage and total when the server did not say how large the file is).
std::string progress_text(const Transfer& t, curl_off_t total, curl_off_t now) {
  const double elapsed = seconds_since(t.start);
  const double rate = elapsed > 0 ? double(now) / elapsed : 0.0;
  const bool small = std::max(total, now) < 1000000;
  const double unit = small ? 1e3 : 1e6;
  const char* unit_name = small ? "kB" : "MB";
  char text[512];
  if (total > 0) {
    std::snprintf(text, sizeof text, ">> Downloading %s %5.1f%% %.1f/%.1f %s %.1f MB/s",
                  t.name.c_str(), 100.0 * double(now) / double(total), double(now) / unit,
                  double(total) / unit, unit_name, rate / 1e6);
  } else {
    std::snprintf(text, sizeof text, ">> Downloading %s %.1f %s %.1f MB/s", t.name.c_str(),
                  double(now) / unit, unit_name, rate / 1e6);
  }
  return text;
}

size_t append_body(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * count;
  if (n > t->max_bytes - t->body.size()) {
    t->too_large = true;
    return 0;  // libcurl aborts the transfer (CURLE_WRITE_ERROR)
  }
  t->body.insert(t->body.end(), data, data + n);
  return n;
}

// libcurl calls this many times a second while data flows (and about once a second while nothing
// arrives): a stop request ends the transfer here, or in perform_until_stopped's loop.
int on_progress(void* user, curl_off_t total, curl_off_t now, curl_off_t, curl_off_t) {
  heartbeat("download");           // libcurl is alive, and its timeouts bound the transfer
  if (stop_requested()) return 1;  // CURLE_ABORTED_BY_CALLBACK
  const auto* t = static_cast<const Transfer*>(user);
  if (t->show_progress && now > 0) show_status(progress_text(*t, total, now));
  return 0;
}

// curl_easy_perform, but through a multi handle that wakes at least every kStopPollMs, so that a
// stop request ends a stalled transfer within a fraction of a second (libcurl alone calls the
// progress function only about once a second while nothing arrives).
CURLcode perform_until_stopped(CURL* easy) {
  CurlMultiHandle multi(curl_multi_init(), curl_multi_cleanup);
  if (!multi || curl_multi_add_handle(multi.get(), easy) != CURLM_OK) return CURLE_OUT_OF_MEMORY;
  CURLcode result = CURLE_OK;
  for (int running = 1; running;) {
    if (curl_multi_perform(multi.get(), &running) != CURLM_OK) {
      result = CURLE_RECV_ERROR;
      break;
    }
    if (running && stop_requested()) {
      result = CURLE_ABORTED_BY_CALLBACK;
      break;
    }
    if (running) curl_multi_poll(multi.get(), nullptr, 0, kStopPollMs, nullptr);
  }
  int left = 0;
  while (CURLMsg* m = curl_multi_info_read(multi.get(), &left)) {
    if (m->msg == CURLMSG_DONE) result = m->data.result;
  }
  curl_multi_remove_handle(multi.get(), easy);
  return result;
}

// Failures that asking the same URL again cannot fix.
bool permanent(CURLcode rc) {
  switch (rc) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_TOO_MANY_REDIRECTS:
    case CURLE_FILE_COULDNT_READ_FILE:
    case CURLE_REMOTE_FILE_NOT_FOUND:
    case CURLE_FILESIZE_EXCEEDED:
    case CURLE_LOGIN_DENIED:
    case CURLE_PEER_FAILED_VERIFICATION:
      return true;
    default:
      return false;
  }
}

std::string lowercase_scheme(const std::string& url) {
  const std::size_t end = url.find("://");
  std::string scheme = url.substr(0, end == std::string::npos ? 0 : end);
  std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return scheme;
}

// Why a mirror is refused before any request, or "" when it may be tried.
std::string mirror_problem(const std::string& mirror) {
  if (mirror.empty()) return "an empty mirror URL (refused)";
  const std::string scheme = lowercase_scheme(mirror);
  if (scheme != "http" && scheme != "https" && scheme != "file") {
    return "unsupported scheme (mirrors must be http://, https:// or file:// URLs)";
  }
  return "";
}

// libcurl's name for the failure; for a refused redirect, also its detail (which scheme) and why.
std::string describe(CURLcode rc, const std::string& detail) {
  std::string what = curl_easy_strerror(rc);
  if (rc == CURLE_UNSUPPORTED_PROTOCOL) {
    // Mirrors' own schemes are checked first, so this can only be a redirect.
    what +=
        " (" + (detail.empty() ? "" : detail + "; ") + "redirects may lead only to http or https)";
  } else if (rc == CURLE_TOO_MANY_REDIRECTS && !detail.empty()) {
    what += " (" + detail + ")";
  }
  return what;
}

std::string too_large(const DataFileSpec& file) {
  return "sends more than " + std::to_string(file.max_gz_bytes()) +
         " bytes, more than any valid copy of " + file.name + " (a bad mirror)";
}

Attempt download_once(const std::string& url, const DataFileSpec& file, const FetchPolicy& policy) {
  static CurlGlobal global;
  // A local mirror's FIFO or device would block libcurl's read beyond any timeout: only a regular
  // file is read.
  if (lowercase_scheme(url) == "file") {
    const std::size_t path_start = url.find('/', url.find("://") + 3);
    struct stat st {};
    if (path_start == std::string::npos || ::stat(url.c_str() + path_start, &st) != 0)
      return {false, false, "no such file", {}};
    if (!S_ISREG(st.st_mode)) return {false, false, "not a regular file", {}, true};
  }
  CurlHandle curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) return {false, true, "curl_easy_init failed", {}};
  Transfer t(file.name, policy.show_progress, file.max_gz_bytes());
  char detail[CURL_ERROR_SIZE] = "";
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, kMirrorProtocols);
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, kRedirectProtocols);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, kMaxRedirects);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(std::ceil(policy.timeout_s * 1000)));
  curl_easy_setopt(
      c, CURLOPT_CONNECTTIMEOUT_MS,
      static_cast<long>(std::ceil(std::min(policy.timeout_s, kMaxConnectTimeoutS) * 1000)));
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, kStallBytesPerS);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME,
                   static_cast<long>(std::ceil(std::min(policy.timeout_s, kStallWindowS))));
  curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(t.max_bytes));
  curl_easy_setopt(c, CURLOPT_USERAGENT, "mnist-train/1.0");
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, append_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);  // always: the callback polls the stop request
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, detail);
  const CURLcode rc = perform_until_stopped(c);
  clear_status();  // before the "Successfully downloaded", "Extracting" and warning lines
  if (stop_requested()) throw_stopped("while downloading " + file.name);
  // An endless or oversized body marks a bad mirror: asking it again would only repeat that.
  if (t.too_large || rc == CURLE_FILESIZE_EXCEEDED)
    return {false, false, too_large(file), {}, true};
  if (rc != CURLE_OK) {
    // Transport failures (refused, reset, timed out, body cut short) may pass: retry them.
    return {false, !permanent(rc), describe(rc, detail), {}};
  }
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  const bool is_http = lowercase_scheme(url).rfind("http", 0) == 0;
  if (is_http && (status < 200 || status >= 300)) {
    const bool retry = status >= 500 || status == 408 || status == 429;
    return {false, retry, "HTTP " + std::to_string(status), {}};
  }
  return {true, false, "", std::move(t.body)};
}

// A file that is missing, unreadable or corrupt (as opposed to a stop request or a bad policy).
bool is_data_fault(const Error& e) {
  return e.code() == ExitCode::kDataUnavailable || e.code() == ExitCode::kDataInvalid;
}

bool hash_listed(const DataFileSpec& file, const std::string& hash) {
  return std::find(file.sha256.begin(), file.sha256.end(), hash) != file.sha256.end();
}

// Verifies a .gz buffer; returns its inflated content, or throws Error naming what failed.
std::vector<std::uint8_t> verify(const DataFileSpec& file, const std::vector<std::uint8_t>& gz,
                                 const std::string& where) {
  const std::string gz_hash = sha256_hex(gz);
  std::vector<std::uint8_t> raw = gunzip(gz, where, file.max_raw_bytes());
  if (hash_listed(file, gz_hash)) return raw;
  const std::string raw_hash = sha256_hex(raw);
  if (hash_listed(file, raw_hash)) return raw;
  throw Error(ExitCode::kDataInvalid, where + ": checksum mismatch (sha256 " + gz_hash +
                                          ", content " + raw_hash + " is not a known " + file.name +
                                          ")");
}

std::vector<std::uint8_t> verify_cached(const DataFileSpec& file, const std::string& path) {
  return verify(file, read_file(path, file.max_gz_bytes()), path);
}

// What lies under a name that is not a regular file, for the warning (lstat: links not followed).
std::string entry_description(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return "gone";
  if (S_ISLNK(st.st_mode)) return "a symbolic link";
  if (S_ISDIR(st.st_mode)) return "a folder";
  if (S_ISFIFO(st.st_mode)) return "a FIFO";
  if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) return "a device";
  if (S_ISSOCK(st.st_mode)) return "a socket";
  return "not a regular file";
}

// Under the folder lock: the cached copy when it verifies. Anything else under the name (an
// invalid file, a folder, link, FIFO or device) is reported in one line and removed, so that the
// download can take its place; it is never followed, read or waited on.
std::optional<std::vector<std::uint8_t>> cached_copy(const DataFileSpec& file,
                                                     const std::string& path, std::ostream& log) {
  switch (file_kind(path)) {
    case FileKind::kMissing:
      return std::nullopt;
    case FileKind::kOther:
      log << "warning: " << path << " is " << entry_description(path)
          << ", not a regular file: replacing it with a fresh download" << std::endl;
      break;
    case FileKind::kRegular:
      try {
        return verify_cached(file, path);
      } catch (const Error& e) {
        if (!is_data_fault(e)) throw;
        log << "warning: cached file is invalid, downloading again: " << e.what() << std::endl;
      }
      break;
  }
  remove_entry(path);
  if (file_kind(path) != FileKind::kMissing) {
    throw Error(ExitCode::kDataUnavailable,
                path + ": cannot remove it to make room for a fresh download");
  }
  return std::nullopt;
}

void make_data_dir(const std::string& data_dir) {
  refuse_foreign_links(data_dir, "--data_dir", ExitCode::kDataUnavailable);
  std::error_code ec;
  fs::create_directories(data_dir, ec);
  std::error_code is_dir_ec;
  if (!fs::is_directory(data_dir, is_dir_ec)) {
    throw Error(ExitCode::kDataUnavailable,
                data_dir + ": cannot create data directory: " +
                    (ec ? ec.message() : std::string("a file of that name is in the way")));
  }
}

// Sleeps in short slices so that a stop request ends the wait within a fraction of a second.
void pause_unless_stopped(double seconds, const std::string& name) {
  const auto end = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(seconds));
  for (;;) {
    heartbeat("download");
    if (stop_requested()) throw_stopped("while downloading " + name);
    const auto now = Clock::now();
    if (now >= end) return;
    std::this_thread::sleep_for(
        std::min<Clock::duration>(end - now, std::chrono::milliseconds(50)));
  }
}

std::string join_url(const std::string& base, const std::string& name) {
  if (!base.empty() && base.back() == '/') return base + name;
  return base + "/" + name;
}

std::string format_number(double x) {
  std::ostringstream s;
  s << x;
  return s.str();
}

// The verified content of `url`, cached under `path`; transient failures are retried with a
// capped back-off. Returns nullopt with `failure` set to the last attempt's failure. On success,
// `downloaded_bytes` is the size of the copy as sent.
std::optional<std::vector<std::uint8_t>> fetch_from_mirror(const DataFileSpec& file,
                                                           const std::string& url,
                                                           const std::string& path,
                                                           const FetchPolicy& policy,
                                                           std::ostream& log, Attempt& failure,
                                                           std::uint64_t& downloaded_bytes) {
  double pause = std::min(policy.backoff_s, kMaxDownloadBackoffS);
  for (int attempt = 1;; ++attempt) {
    failure = download_once(url, file, policy);
    if (failure.ok) {
      try {
        auto raw = verify(file, failure.body, url);
        write_file_atomically(path, failure.body);  // a write failure is the disk's: not caught
        downloaded_bytes = failure.body.size();
        log << "Successfully downloaded " << file.name << " " << failure.body.size() << " bytes."
            << std::endl;
        log << "Extracting " << path << std::endl;
        return raw;
      } catch (const Error& e) {
        if (e.code() != ExitCode::kDataInvalid) throw;
        // A bad file will not improve by asking the same mirror again.
        failure = {false, false, e.what(), {}, true};
      }
    }
    const bool last = attempt >= policy.attempts || !failure.retryable;
    log << "warning: " << url << ": " << failure.error
        << (last ? ""
                 : " (attempt " + std::to_string(attempt) + " of " +
                       std::to_string(policy.attempts) + ", retrying)")
        << std::endl;
    if (last) return std::nullopt;
    pause_unless_stopped(pause, file.name);
    pause = std::min(pause * 2, kMaxDownloadBackoffS);
  }
}

// Tries each mirror in turn; caches and returns the first copy that verifies. When none does,
// the error is kDataInvalid if the mirrors answered with corrupt copies and nothing failed in a
// way that may pass (retrying cannot help), else kDataUnavailable.
std::vector<std::uint8_t> download_and_cache(const DataFileSpec& file, const std::string& path,
                                             const FetchPolicy& policy, std::ostream& log,
                                             FetchReport& report) {
  if (policy.mirrors.empty())
    throw Error(ExitCode::kDataUnavailable, file.name + ": no mirrors to download from");
  std::string failures;
  bool invalid_copies = false, transient = false;
  for (const std::string& mirror : policy.mirrors) {
    std::string where = "mirror '" + mirror + "'", why = mirror_problem(mirror);
    if (!why.empty()) {
      log << "warning: " << where << ": " << why << std::endl;
    } else {
      where = join_url(mirror, file.name);
      Attempt failure;
      if (auto raw =
              fetch_from_mirror(file, where, path, policy, log, failure, report.downloaded_bytes)) {
        report.source = where;
        report.downloaded = true;
        return std::move(*raw);
      }
      why = failure.error;
      invalid_copies |= failure.invalid_copy;
      transient |= failure.retryable;
    }
    failures += (failures.empty() ? " " : "; ") + where + ": " + why;
  }
  const ExitCode code =
      invalid_copies && !transient ? ExitCode::kDataInvalid : ExitCode::kDataUnavailable;
  throw Error(code, file.name + ": could not get a valid copy from any of " +
                        std::to_string(policy.mirrors.size()) + " mirror(s):" + failures);
}

}  // namespace

void validate_fetch_policy(const FetchPolicy& policy) {
  // Written so that NaN fails every test.
  if (!(policy.timeout_s >= kMinDownloadTimeoutS && policy.timeout_s <= kMaxDownloadTimeoutS)) {
    throw Error(ExitCode::kBadArguments, "download timeout " + format_number(policy.timeout_s) +
                                             " s is outside " +
                                             format_number(kMinDownloadTimeoutS) + " .. " +
                                             format_number(kMaxDownloadTimeoutS) + " s");
  }
  if (policy.attempts < 1 || policy.attempts > kMaxDownloadAttempts) {
    throw Error(ExitCode::kBadArguments, "download attempts " + std::to_string(policy.attempts) +
                                             " is outside 1 .. " +
                                             std::to_string(kMaxDownloadAttempts));
  }
  if (!(policy.backoff_s >= 0 && policy.backoff_s <= kMaxDownloadBackoffS)) {
    throw Error(ExitCode::kBadArguments, "download back-off " + format_number(policy.backoff_s) +
                                             " s is outside 0 .. " +
                                             format_number(kMaxDownloadBackoffS) + " s");
  }
}

std::vector<std::uint8_t> fetch_verified(const DataFileSpec& file, const std::string& data_dir,
                                         const FetchPolicy& policy, std::ostream& log,
                                         FetchReport* report) {
  FetchReport unused;
  FetchReport& where = report ? *report : unused;
  where = FetchReport{};
  validate_fetch_policy(policy);
  throw_if_stop_requested("before loading " + file.name);
  const std::string path = (fs::path(data_dir) / file.name).string();
  bool seen_invalid = false;
  for (int pass = 0;; ++pass) {
    // Without the lock first: a cached file was renamed into place whole, so a valid one can be
    // read as is. Readers do not queue, and a read-only cache (a baked volume) needs no lock.
    if (file_kind(path) == FileKind::kRegular) {
      try {
        auto raw = verify_cached(file, path);
        log << "Extracting " << path << std::endl;
        where.source = path;
        return raw;
      } catch (const Error& e) {
        if (!is_data_fault(e)) throw;
        seen_invalid = true;  // reported and replaced under the lock
      }
    }
    make_data_dir(data_dir);
    // One process at a time checks and fetches: the others wait here, then find its copy.
    heartbeat("download");
    FolderLock lock(data_dir);
    throw_if_stop_requested("before loading " + file.name);
    // A file that appeared while this one waited is another fetcher's verified copy: check it
    // after letting go of the lock, so that the waiters do not verify it one after the other.
    if (!seen_invalid && pass < 2 && file_kind(path) == FileKind::kRegular) continue;
    if (auto raw = cached_copy(file, path, log)) {
      log << "Extracting " << path << std::endl;
      where.source = path;
      return std::move(*raw);
    }
    const auto start = Clock::now();
    auto raw = download_and_cache(file, path, policy, log, where);
    where.download_seconds = seconds_since(start);
    return raw;
  }
}

}  // namespace mnist
