// The downloader tests' fixture: a small labels file, its gzip, a fresh cache folder per test and
// helpers that fetch it and report the error. Shared by test_download.cpp (the ordinary paths) and
// test_download_hostile.cpp (servers and caches that misbehave).
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "data/download.h"
#include "data/gzip.h"
#include "data/idx.h"
#include "data/sha256.h"
#include "error.h"
#include "support/http_server.h"

namespace mnist {

// Sets (or, given nullopt, unsets) one environment variable for its lifetime, then puts back what
// the caller had: the tests never see the caller's value, and never clobber it.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, std::optional<std::string> value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    set(value);
  }
  ~ScopedEnv() { set(old_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

  void set(const std::optional<std::string>& value) const {
    if (value) {
      ::setenv(name_.c_str(), value->c_str(), 1);
    } else {
      ::unsetenv(name_.c_str());
    }
  }

 private:
  std::string name_;
  std::optional<std::string> old_;
};

// The variables the data layer reads (src/data/catalog.cpp), cleared for a test's lifetime.
struct CleanDataEnvironment {
  ScopedEnv mirror{"MNIST_MIRROR", std::nullopt};
  ScopedEnv baked{"MNIST_BAKED_DATA", std::nullopt};
};

class DownloadTest : public ::testing::Test {
 protected:
  using Path = std::filesystem::path;

  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("mnist_dl_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    raw_ = encode_idx_labels({3, 1, 4, 1, 5, 9, 2, 6});
    gz_ = gzip(raw_);
    file_ = DataFileSpec{"labels.gz", {sha256_hex(gz_)}};
    body_ = std::string(gz_.begin(), gz_.end());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  FetchPolicy policy(std::vector<std::string> mirrors) const {
    FetchPolicy p;
    p.mirrors = std::move(mirrors);
    p.timeout_s = 5;
    p.attempts = 3;
    p.backoff_s = 0.01;
    return p;
  }
  std::vector<std::uint8_t> fetch(const FetchPolicy& p) {
    return fetch_verified(file_, dir_.string(), p, log_);
  }
  // The error fetch throws (checked to be one line), or {kOk, "no error"}.
  std::pair<ExitCode, std::string> fetch_failure(const FetchPolicy& p) {
    try {
      fetch(p);
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << "one line";
      return {e.code(), e.what()};
    }
    return {ExitCode::kOk, "no error"};
  }
  // The message of the error fetch throws, checked to carry `expected`.
  std::string fetch_error(const FetchPolicy& p, ExitCode expected = ExitCode::kDataUnavailable) {
    const auto [code, message] = fetch_failure(p);
    EXPECT_EQ(code, expected) << message;
    return message;
  }
  Path cache_path() const { return dir_ / "labels.gz"; }
  bool cached() const { return std::filesystem::exists(cache_path()); }
  // Anything in the cache but the file and the shared folder's lock: temporaries, partial files.
  bool leftovers() const {
    if (!std::filesystem::exists(dir_)) return false;
    for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
      const Path name = entry.path().filename();
      if (name != "labels.gz" && name != ".lock") return true;
    }
    return false;
  }

  Path dir_;
  std::vector<std::uint8_t> raw_, gz_;
  std::string body_;
  DataFileSpec file_;
  std::ostringstream log_;
  CleanDataEnvironment env_;
};

}  // namespace mnist
