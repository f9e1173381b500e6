#include "data/download.h"

#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <thread>

#include "data/fileio.h"
#include "data/gzip.h"
#include "data/sha256.h"
#include "error.h"

namespace mnist {

namespace fs = std::filesystem;

namespace {

struct CurlGlobal {  // curl_global_init once per process, before any thread could race it
  CurlGlobal() { curl_global_init(CURL_GLOBAL_DEFAULT); }
  ~CurlGlobal() { curl_global_cleanup(); }
};

using CurlHandle = std::unique_ptr<CURL, decltype(&curl_easy_cleanup)>;

struct Attempt {
  bool ok = false;
  bool retryable = false;
  std::string error;
  std::vector<std::uint8_t> body;
};

size_t append_body(char* data, size_t size, size_t count, void* user) {
  auto* body = static_cast<std::vector<std::uint8_t>*>(user);
  body->insert(body->end(), data, data + size * count);
  return size * count;
}

int show_progress(void* user, curl_off_t total, curl_off_t now, curl_off_t, curl_off_t) {
  const auto* name = static_cast<const std::string*>(user);
  if (total > 0) {
    std::fprintf(stderr, "\r>> Downloading %s %5.1f%%", name->c_str(),
                 100.0 * double(now) / double(total));
  }
  return 0;
}

Attempt download_once(const std::string& url, const std::string& name, const FetchPolicy& policy) {
  static CurlGlobal global;
  Attempt a;
  CurlHandle curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) return {false, true, "curl_easy_init failed", {}};
  std::string name_copy = name;
  curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl.get(), CURLOPT_MAXREDIRS, 5L);
  curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT_MS, static_cast<long>(policy.timeout_s * 1000));
  curl_easy_setopt(curl.get(), CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(std::min(policy.timeout_s, 30.0) * 1000));
  curl_easy_setopt(curl.get(), CURLOPT_USERAGENT, "mnist-train/1.0");
  curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, append_body);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &a.body);
  curl_easy_setopt(curl.get(), CURLOPT_NOSIGNAL, 1L);
  if (policy.show_progress) {
    curl_easy_setopt(curl.get(), CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl.get(), CURLOPT_XFERINFOFUNCTION, show_progress);
    curl_easy_setopt(curl.get(), CURLOPT_XFERINFODATA, &name_copy);
  }
  const CURLcode rc = curl_easy_perform(curl.get());
  if (policy.show_progress) std::fprintf(stderr, "\r\033[K");
  if (rc != CURLE_OK) {
    // Transport failures (refused, reset, timed out, body cut short) may pass: retry them.
    return {false, true, curl_easy_strerror(rc), {}};
  }
  long status = 0;
  curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &status);
  const bool is_http = url.rfind("http", 0) == 0;
  if (is_http && (status < 200 || status >= 300)) {
    const bool retry = status >= 500 || status == 408 || status == 429;
    return {false, retry, "HTTP " + std::to_string(status), {}};
  }
  a.ok = true;
  return a;
}

bool hash_listed(const DataFileSpec& file, const std::string& hash) {
  return std::find(file.sha256.begin(), file.sha256.end(), hash) != file.sha256.end();
}

// Verifies a .gz buffer; returns its inflated content, or throws Error naming what failed.
std::vector<std::uint8_t> verify(const DataFileSpec& file, const std::vector<std::uint8_t>& gz,
                                 const std::string& where) {
  const std::string gz_hash = sha256_hex(gz);
  std::vector<std::uint8_t> raw = gunzip(gz, where);
  if (hash_listed(file, gz_hash)) return raw;
  const std::string raw_hash = sha256_hex(raw);
  if (hash_listed(file, raw_hash)) return raw;
  throw Error(ExitCode::kDataUnavailable, where + ": checksum mismatch (sha256 " + gz_hash +
                                              ", content " + raw_hash + " is not a known " +
                                              file.name + ")");
}

std::string join_url(const std::string& base, const std::string& name) {
  if (!base.empty() && base.back() == '/') return base + name;
  return base + "/" + name;
}

}  // namespace

std::vector<std::uint8_t> fetch_verified(const DataFileSpec& file, const std::string& data_dir,
                                         const FetchPolicy& policy, std::ostream& log) {
  const fs::path final_path = fs::path(data_dir) / file.name;
  std::error_code ec;
  if (fs::exists(final_path, ec)) {
    try {
      auto raw = verify(file, read_file(final_path.string()), final_path.string());
      log << "Extracting " << final_path.string() << std::endl;
      return raw;
    } catch (const Error& e) {
      log << "warning: cached file is invalid, downloading again: " << e.what() << std::endl;
      fs::remove(final_path, ec);
    }
  }
  fs::create_directories(data_dir, ec);
  if (ec) {
    throw Error(ExitCode::kDataUnavailable,
                data_dir + ": cannot create data directory: " + ec.message());
  }
  if (policy.mirrors.empty())
    throw Error(ExitCode::kDataUnavailable, file.name + ": no mirrors to download from");

  std::string failures;
  for (const std::string& mirror : policy.mirrors) {
    const std::string url = join_url(mirror, file.name);
    double pause = policy.backoff_s;
    for (int attempt = 1; attempt <= policy.attempts; ++attempt) {
      Attempt a = download_once(url, file.name, policy);
      if (a.ok) {
        try {
          auto raw = verify(file, a.body, url);
          write_file_atomically(final_path.string(), a.body);
          log << "Successfully downloaded " << file.name << " " << a.body.size() << " bytes."
              << std::endl;
          log << "Extracting " << final_path.string() << std::endl;
          return raw;
        } catch (const Error& e) {
          a.error = e.what();  // a bad file will not improve by asking the same mirror again
          a.retryable = false;
        }
      }
      const bool last = attempt == policy.attempts || !a.retryable;
      log << "warning: " << url << ": " << a.error
          << (last ? ""
                   : " (attempt " + std::to_string(attempt) + " of " +
                         std::to_string(policy.attempts) + ", retrying)")
          << std::endl;
      if (last) {
        failures += (failures.empty() ? " " : "; ") + url + ": " + a.error;
        break;
      }
      std::this_thread::sleep_for(std::chrono::duration<double>(pause));
      pause *= 2;
    }
  }
  throw Error(ExitCode::kDataUnavailable, file.name + ": could not get a valid copy from any of " +
                                              std::to_string(policy.mirrors.size()) +
                                              " mirror(s):" + failures);
}

}  // namespace mnist
