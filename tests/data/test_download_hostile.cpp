// The downloader against servers and caches that misbehave: concurrent fetchers sharing a cache,
// stop requests mid-transfer, stalled and endless servers, redirects to other schemes, bad
// policies, and folders, FIFOs, links and huge files planted under a cache file's name.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <limits>
#include <thread>

#include "data/catalog.h"
#include "data/fileio.h"
#include "download_fixture.h"
#include "stop.h"

namespace mnist {
namespace {

namespace fs = std::filesystem;
using testing::HttpResponse;
using testing::HttpServer;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Clears the stop request however the test ends.
struct StopFlagReset {
  ~StopFlagReset() { set_stop_signal_for_testing(0); }
};

// Requests a stop (as SIGTERM or SIGINT would) after a delay, from another thread.
class DelayedStop {
 public:
  DelayedStop(int signal, double after_s)
      : thread_([=] {
          std::this_thread::sleep_for(std::chrono::duration<double>(after_s));
          set_stop_signal_for_testing(signal);
        }) {}
  ~DelayedStop() { thread_.join(); }
  DelayedStop(const DelayedStop&) = delete;
  DelayedStop& operator=(const DelayedStop&) = delete;

 private:
  std::thread thread_;
};

class HostileDownloadTest : public DownloadTest {
 protected:
  // A bigger file than the fixture's, so that a slow server takes a while to send it.
  void use_larger_file() {
    std::vector<std::uint8_t> labels(20000);
    for (std::size_t i = 0; i < labels.size(); ++i)
      labels[i] = static_cast<std::uint8_t>(i * 7 % 10);
    raw_ = encode_idx_labels(labels);
    gz_ = gzip(raw_);
    file_ = DataFileSpec{"labels.gz", {sha256_hex(gz_)}, raw_.size()};
    body_ = std::string(gz_.begin(), gz_.end());
  }
  HttpResponse ok() const { return HttpResponse{200, body_}; }
  int log_count(const std::string& needle) const {
    const std::string log = log_.str();
    int n = 0;
    for (auto at = log.find(needle); at != std::string::npos; at = log.find(needle, at + 1)) ++n;
    return n;
  }
};

// --- a cache shared by concurrent fetchers ---------------------------------------------------

TEST_F(HostileDownloadTest, ConcurrentFetchersDownloadOnceAndShareTheCopy) {
  use_larger_file();
  HttpServer slow([&](const std::string&) {
    HttpResponse r = ok();
    r.chunk_bytes = 1024;
    r.chunk_delay_ms = 10;
    return r;
  });
  constexpr int kFetchers = 6;
  std::vector<std::ostringstream> logs(kFetchers);
  std::vector<std::vector<std::uint8_t>> results(kFetchers);
  std::vector<std::string> errors(kFetchers);
  std::vector<std::thread> threads;
  for (int i = 0; i < kFetchers; ++i) {
    threads.emplace_back([&, i] {
      try {
        results[i] = fetch_verified(file_, dir_.string(), policy({slow.url()}), logs[i]);
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  int downloads = 0;
  for (int i = 0; i < kFetchers; ++i) {
    EXPECT_EQ(errors[i], "") << "fetcher " << i;
    EXPECT_EQ(results[i], raw_) << "fetcher " << i;
    downloads += logs[i].str().find("Successfully downloaded") != std::string::npos;
    EXPECT_NE(logs[i].str().find("Extracting " + cache_path().string()), std::string::npos);
  }
  EXPECT_EQ(slow.requests("/labels.gz"), 1) << "the others waited and reused the copy";
  EXPECT_EQ(downloads, 1);
  EXPECT_FALSE(leftovers());
}

// --- stop requests ---------------------------------------------------------------------------

TEST_F(HostileDownloadTest, StopRequestEndsAStalledDownloadWithinASecond) {
  StopFlagReset reset;
  HttpServer stalled([&](const std::string&) {
    HttpResponse r = ok();
    r.stall_s = 30;
    return r;
  });
  FetchPolicy p = policy({stalled.url()});
  p.timeout_s = 60;
  const auto start = Clock::now();
  std::pair<ExitCode, std::string> failure;
  {
    DelayedStop stop(SIGTERM, 0.3);
    failure = fetch_failure(p);
  }
  // Bounded, not fast: the stall is 30 s, and 10 s leaves room for a loaded machine.
  EXPECT_LT(seconds_since(start), 10.0) << "the transfer did not notice the stop request";
  EXPECT_EQ(failure.first, ExitCode::kTerminated) << failure.second;
  EXPECT_EQ(failure.second, "stopped by SIGTERM while downloading labels.gz");
  EXPECT_EQ(stalled.total_requests(), 1) << "no retry after a stop";
  EXPECT_FALSE(cached());
  EXPECT_FALSE(leftovers());
}

TEST_F(HostileDownloadTest, StopRequestEndsTheBackOffPause) {
  StopFlagReset reset;
  HttpServer busy([&](const std::string&) { return HttpResponse{503, "busy"}; });
  FetchPolicy p = policy({busy.url()});
  p.backoff_s = kMaxDownloadBackoffS;
  const auto start = Clock::now();
  std::pair<ExitCode, std::string> failure;
  {
    DelayedStop stop(SIGINT, 0.3);
    failure = fetch_failure(p);
  }
  // The pause is kMaxDownloadBackoffS (10 s) and then more attempts: a bound of 8 s shows it was
  // cut short, with room for a loaded machine.
  EXPECT_LT(seconds_since(start), 8.0) << "the back-off sleep did not notice the stop request";
  EXPECT_EQ(failure.first, ExitCode::kInterrupted) << failure.second;
  EXPECT_EQ(busy.total_requests(), 1);
}

TEST_F(HostileDownloadTest, StopRequestBeforeStartingMakesNoRequest) {
  StopFlagReset reset;
  HttpServer server([&](const std::string&) { return ok(); });
  set_stop_signal_for_testing(SIGTERM);
  const auto [code, message] = fetch_failure(policy({server.url()}));
  EXPECT_EQ(code, ExitCode::kTerminated) << message;
  EXPECT_EQ(server.total_requests(), 0);
}

// --- bounded in time and size ----------------------------------------------------------------

TEST_F(HostileDownloadTest, StalledServerTimesOut) {
  HttpServer stalled([&](const std::string&) {
    HttpResponse r = ok();
    r.stall_s = 30;
    return r;
  });
  FetchPolicy p = policy({stalled.url()});
  p.timeout_s = 0.5;
  p.attempts = 1;
  const auto start = Clock::now();
  const std::string error = fetch_error(p);
  EXPECT_LT(seconds_since(start), 15.0) << "the 0.5 s timeout did not end a 30 s stall";
  EXPECT_NE(error.find("Timeout was reached"), std::string::npos) << error;
}

TEST_F(HostileDownloadTest, EndlessBodyFailsThatMirrorOnceThenTheNextOneServes) {
  file_.raw_size = raw_.size();  // bounds the download to a few KiB
  HttpServer endless([&](const std::string&) {
    HttpResponse r;
    r.endless = true;
    return r;
  });
  HttpServer good([&](const std::string&) { return ok(); });
  EXPECT_EQ(fetch(policy({endless.url(), good.url()})), raw_);
  EXPECT_EQ(endless.total_requests(), 1) << "a bad mirror is not asked again";
  EXPECT_NE(log_.str().find("sends more than " + std::to_string(file_.max_gz_bytes()) +
                            " bytes, more than any valid copy of labels.gz (a bad mirror)"),
            std::string::npos)
      << log_.str();
}

TEST_F(HostileDownloadTest, OversizedAnnouncedBodyIsRefused) {
  file_.raw_size = raw_.size();
  HttpServer huge([&](const std::string&) {
    return HttpResponse{200, std::string(file_.max_gz_bytes() + 1, 'x')};
  });
  const std::string error = fetch_error(policy({huge.url()}), ExitCode::kDataInvalid);
  EXPECT_NE(error.find("more than any valid copy"), std::string::npos) << error;
  EXPECT_EQ(huge.total_requests(), 1);
  EXPECT_FALSE(leftovers());
}

TEST_F(HostileDownloadTest, BuiltinFilesBoundEveryValidGzip) {
  for (const char* name : {"mnist", "fashion-mnist"}) {
    const DatasetSpec d = builtin_dataset_spec(name);
    EXPECT_EQ(d.train_images.raw_size, 47040016u) << name;
    EXPECT_EQ(d.train_labels.raw_size, 60008u) << name;
    EXPECT_EQ(d.test_images.raw_size, 7840016u) << name;
    EXPECT_EQ(d.test_labels.raw_size, 10008u) << name;
    // Even a gzip that stores the content uncompressed (level 0: 5 bytes per 64 KiB block, an
    // 18-byte frame) fits, with room for a file name in the header.
    for (const DataFileSpec* f :
         {&d.train_images, &d.train_labels, &d.test_images, &d.test_labels}) {
      EXPECT_GT(f->max_gz_bytes(), f->raw_size + 5 * (f->raw_size / 65535 + 1) + 18 + 256) << name;
    }
    EXPECT_LT(d.train_images.max_gz_bytes(), 50u << 20) << name;
  }
  EXPECT_GE(builtin_dataset_spec("fashion-mnist").train_images.max_gz_bytes(), 26421856u);
}

// --- which exit code a Job sees -------------------------------------------------------------

TEST_F(HostileDownloadTest, CorruptCopiesAreInvalidDataUnlessAMirrorMayRecover) {
  auto tampered = raw_;
  tampered.back() = 7;
  const auto bad_gz = gzip(tampered);
  HttpServer corrupt([&](const std::string&) {
    return HttpResponse{200, std::string(bad_gz.begin(), bad_gz.end())};
  });
  HttpServer not_gzip([&](const std::string&) { return HttpResponse{200, "not gzip"}; });
  HttpServer missing([&](const std::string&) { return HttpResponse{404, "gone"}; });
  HttpServer busy([&](const std::string&) { return HttpResponse{503, "busy"}; });
  // Every mirror answered, none with a valid copy: retrying cannot help (exit 7).
  fetch_error(policy({corrupt.url(), not_gzip.url(), missing.url()}), ExitCode::kDataInvalid);
  // A mirror that was only busy may recover: exit 3, worth a retry.
  const std::string error =
      fetch_error(policy({corrupt.url(), busy.url()}), ExitCode::kDataUnavailable);
  EXPECT_NE(error.find("checksum mismatch"), std::string::npos) << error;
  EXPECT_NE(error.find("HTTP 503"), std::string::npos) << error;
  // Nothing but missing files: unavailable, not invalid.
  fetch_error(policy({missing.url()}), ExitCode::kDataUnavailable);
  EXPECT_FALSE(cached());
}

// --- permanent errors and schemes ------------------------------------------------------------

TEST_F(HostileDownloadTest, RedirectsToOtherSchemesAreRefusedWithoutRetrying) {
  for (const std::string target :
       {"file:///etc/passwd", "ftp://127.0.0.1/labels.gz", "gopher://127.0.0.1/labels.gz"}) {
    HttpServer redirecting([&](const std::string&) {
      HttpResponse r{302, ""};
      r.location = target;
      return r;
    });
    const std::string error = fetch_error(policy({redirecting.url()}));
    EXPECT_EQ(redirecting.total_requests(), 1) << target;
    EXPECT_NE(error.find("Unsupported protocol"), std::string::npos) << error;
    EXPECT_FALSE(cached());
  }
}

TEST_F(HostileDownloadTest, RedirectsToHttpAreFollowed) {
  HttpServer good([&](const std::string&) { return ok(); });
  HttpServer redirecting([&](const std::string& path) {
    HttpResponse r{301, ""};
    r.location = good.url() + path.substr(1);
    return r;
  });
  EXPECT_EQ(fetch(policy({redirecting.url()})), raw_);
  EXPECT_EQ(good.requests("/labels.gz"), 1);
}

TEST_F(HostileDownloadTest, RedirectLoopIsNotRetried) {
  std::string self;
  HttpServer loop([&](const std::string&) {
    HttpResponse r{302, ""};
    r.location = self;
    return r;
  });
  self = loop.url() + "labels.gz";
  const std::string error = fetch_error(policy({loop.url()}));
  EXPECT_NE(error.find("Number of redirects hit maximum amount"), std::string::npos) << error;
  EXPECT_EQ(loop.total_requests(), 6) << "one attempt: the first request and five redirects";
}

TEST_F(HostileDownloadTest, ClientErrorsOtherThan408And429AreNotRetried) {
  for (int status : {400, 401, 403, 410}) {
    HttpServer refusing([&](const std::string&) { return HttpResponse{status, "no"}; });
    EXPECT_NE(fetch_error(policy({refusing.url()})).find("HTTP " + std::to_string(status)),
              std::string::npos);
    EXPECT_EQ(refusing.total_requests(), 1) << status;
  }
  HttpServer throttling([&](const std::string&) { return HttpResponse{429, "slow down"}; });
  fetch_error(policy({throttling.url()}));
  EXPECT_EQ(throttling.total_requests(), 3);
}

TEST_F(HostileDownloadTest, EmptyAndOtherSchemeMirrorsAreRefusedWithoutARequest) {
  const std::string only_empty = fetch_error(policy({""}));
  EXPECT_NE(only_empty.find("mirror '': an empty mirror URL (refused)"), std::string::npos)
      << only_empty;
  HttpServer good([&](const std::string&) { return ok(); });
  EXPECT_EQ(fetch(policy({"", "ftp://127.0.0.1:1/", "gopher://127.0.0.1:1/", good.url()})), raw_);
  EXPECT_EQ(good.total_requests(), 1);
  EXPECT_NE(log_.str().find("mirror 'ftp://127.0.0.1:1/': unsupported scheme"), std::string::npos)
      << log_.str();
  EXPECT_EQ(log_.str().find("retrying"), std::string::npos) << log_.str();
}

TEST_F(HostileDownloadTest, PolicyNumbersAreValidated) {
  HttpServer server([&](const std::string&) { return ok(); });
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<FetchPolicy> bad;
  for (double t : {nan, inf, -1.0, 0.0, 1e-9, 1e300}) {
    bad.push_back(policy({server.url()}));
    bad.back().timeout_s = t;
  }
  for (int a : {0, -1, 1000000}) {
    bad.push_back(policy({server.url()}));
    bad.back().attempts = a;
  }
  for (double b : {nan, -1.0, 1e9}) {
    bad.push_back(policy({server.url()}));
    bad.back().backoff_s = b;
  }
  for (const FetchPolicy& p : bad) {
    const auto [code, message] = fetch_failure(p);
    EXPECT_EQ(code, ExitCode::kBadArguments) << message;
    EXPECT_EQ(message.rfind("download ", 0), 0u) << message;
  }
  EXPECT_EQ(server.total_requests(), 0);
}

// --- odd entries under a cache file's name ---------------------------------------------------

TEST_F(HostileDownloadTest, FolderUnderTheNameIsReportedAndReplaced) {
  fs::create_directories(cache_path() / "inside");
  std::ofstream(cache_path() / "inside" / "file") << "x";
  HttpServer server([&](const std::string&) { return ok(); });
  EXPECT_EQ(fetch(policy({server.url()})), raw_);
  EXPECT_EQ(log_count("warning: " + cache_path().string() + " is a folder, not a regular file"), 1)
      << log_.str();
  EXPECT_EQ(file_kind(cache_path().string()), FileKind::kRegular);
  EXPECT_EQ(server.total_requests(), 1);
}

TEST_F(HostileDownloadTest, FifoUnderTheNameIsNeverWaitedOn) {
  fs::create_directories(dir_);
  ASSERT_EQ(::mkfifo(cache_path().c_str(), 0644), 0);
  HttpServer server([&](const std::string&) { return ok(); });
  const auto start = Clock::now();
  EXPECT_EQ(fetch(policy({server.url()})), raw_);
  EXPECT_LT(seconds_since(start), 10.0) << "bounded: a FIFO opened for reading blocks forever";
  EXPECT_EQ(log_count(cache_path().string() + " is a FIFO, not a regular file"), 1) << log_.str();
  EXPECT_EQ(file_kind(cache_path().string()), FileKind::kRegular);
}

TEST_F(HostileDownloadTest, SymlinkToAValidCopyIsNotUsedThroughTheLink) {
  const Path elsewhere = dir_.string() + "_elsewhere";
  fs::create_directories(elsewhere);
  fs::create_directories(dir_);
  write_file_atomically((elsewhere / "labels.gz").string(), gz_);
  fs::create_symlink(elsewhere / "labels.gz", cache_path());
  HttpServer server([&](const std::string&) { return ok(); });
  EXPECT_EQ(fetch(policy({server.url()})), raw_);
  EXPECT_EQ(server.total_requests(), 1) << "the linked copy must not count as cached";
  EXPECT_EQ(log_count(cache_path().string() + " is a symbolic link, not a regular file"), 1)
      << log_.str();
  EXPECT_FALSE(fs::is_symlink(cache_path()));
  EXPECT_EQ(read_file((elsewhere / "labels.gz").string(), 1 << 20), gz_) << "target untouched";
  fs::remove_all(elsewhere);
}

TEST_F(HostileDownloadTest, DanglingSymlinkIsReplacedNotWrittenThrough) {
  const Path target = dir_.string() + "_target";
  fs::create_directories(dir_);
  fs::create_symlink(target, cache_path());
  HttpServer server([&](const std::string&) { return ok(); });
  EXPECT_EQ(fetch(policy({server.url()})), raw_);
  EXPECT_FALSE(fs::exists(target)) << "the download was written through the link";
  EXPECT_EQ(file_kind(cache_path().string()), FileKind::kRegular);
}

TEST_F(HostileDownloadTest, HugePlantedFileIsRefusedUnreadAndReplaced) {
  file_.raw_size = raw_.size();
  fs::create_directories(dir_);
  { std::ofstream(cache_path()) << "x"; }
  // Sparse: 64 GiB that take no disk, more than this machine could read in the bound below (or
  // hold in memory), so a checker that reads it either fails the bound or runs out of memory.
  fs::resize_file(cache_path(), std::uint64_t{64} << 30);
  HttpServer server([&](const std::string&) { return ok(); });
  const auto start = Clock::now();
  EXPECT_EQ(fetch(policy({server.url()})), raw_);
  EXPECT_LT(seconds_since(start), 10.0);
  EXPECT_NE(log_.str().find("cached file is invalid, downloading again: " + cache_path().string() +
                            ": is 68719476736 bytes"),
            std::string::npos)
      << log_.str();
  EXPECT_EQ(fs::file_size(cache_path()), gz_.size());
}

TEST_F(HostileDownloadTest, ValidCacheIsReadWithoutTakingTheLock) {
  fs::create_directories(dir_);
  write_file_atomically(cache_path().string(), gz_);
  fs::permissions(dir_, fs::perms::owner_read | fs::perms::owner_exec);  // a read-only volume
  HttpServer server([&](const std::string&) { return ok(); });
  const auto raw = fetch(policy({server.url()}));
  fs::permissions(dir_, fs::perms::owner_all);
  EXPECT_EQ(raw, raw_);
  EXPECT_EQ(server.total_requests(), 0);
  EXPECT_FALSE(fs::exists(dir_ / ".lock"));
}

}  // namespace
}  // namespace mnist
