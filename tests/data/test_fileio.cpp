// Files in shared folders: no links followed, no FIFO waited on, unique temporaries, appends that
// never truncate, a folder lock, and other users' links refused.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <csignal>
#include <filesystem>
#include <thread>

#include "data/fileio.h"
#include "error.h"

namespace mnist {
namespace {

namespace fs = std::filesystem;

class FileIo : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("mnist_fileio_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const char* name) const { return (dir_ / name).string(); }
  ExitCode read_error(const std::string& p, std::size_t max = 100) const {
    try {
      read_file(p, max);
    } catch (const Error& e) {
      return e.code();
    }
    return ExitCode::kOk;
  }
  fs::path dir_;
};

TEST_F(FileIo, ReadsOnlyRegularFilesWithinTheirBound) {
  write_file_atomically(path("f"), {1, 2, 3});
  EXPECT_EQ(read_file(path("f"), 3), (std::vector<std::uint8_t>{1, 2, 3}));
  EXPECT_EQ(read_error(path("f"), 2), ExitCode::kDataUnavailable) << "over the bound";
  fs::create_symlink(path("f"), path("link"));
  EXPECT_EQ(read_error(path("link")), ExitCode::kDataUnavailable) << "a link is not followed";
  ASSERT_EQ(::mkfifo(path("fifo").c_str(), 0600), 0);
  EXPECT_EQ(read_error(path("fifo")), ExitCode::kDataUnavailable) << "a FIFO is not waited on";
  fs::create_directory(path("dir"));
  EXPECT_EQ(read_error(path("dir")), ExitCode::kDataUnavailable);
  EXPECT_EQ(read_error(path("missing")), ExitCode::kDataUnavailable);
  EXPECT_EQ(file_kind(path("link")), FileKind::kOther);
  EXPECT_EQ(file_kind(path("f")), FileKind::kRegular);
  EXPECT_EQ(file_kind(path("missing")), FileKind::kMissing);
}

TEST_F(FileIo, AtomicWritesReplaceLinksAndRaceSafely) {
  write_file_atomically(path("victim"), {'v'});
  fs::create_symlink(path("victim"), path("out"));
  write_file_atomically(path("out"), {'n', 'e', 'w'});
  EXPECT_EQ(read_file(path("victim"), 10), (std::vector<std::uint8_t>{'v'}));
  EXPECT_FALSE(fs::is_symlink(path("out")));
  // Writers of one name at once: each uses its own temporary, the result is one whole copy.
  std::vector<std::thread> writers;
  for (int w = 0; w < 8; ++w) {
    writers.emplace_back([&, w] {
      for (int i = 0; i < 20; ++i)
        write_file_atomically(path("shared"), std::vector<std::uint8_t>(4096, std::uint8_t(w)));
    });
  }
  for (auto& t : writers) t.join();
  const auto bytes = read_file(path("shared"), 4096);
  ASSERT_EQ(bytes.size(), 4096u);
  EXPECT_EQ(std::count(bytes.begin(), bytes.end(), bytes[0]), 4096);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 3)
      << "no temporaries left behind";
}

// A name of the folder's longest legal length: its temporary is cut to fit, the file is written.
TEST_F(FileIo, AtomicWritesOfTheLongestLegalName) {
  const long name_max = ::pathconf(dir_.c_str(), _PC_NAME_MAX);
  ASSERT_GT(name_max, 0);
  const std::string longest = (dir_ / std::string(name_max, 'n')).string();
  write_file_atomically(longest, {'o', 'k'});
  EXPECT_EQ(read_file(longest, 10), (std::vector<std::uint8_t>{'o', 'k'}));
  write_file_atomically(longest, {'a', 'g', 'a', 'i', 'n'});
  EXPECT_EQ(read_file(longest, 10).size(), 5u);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1)
      << "no temporaries left behind";
}

// Whoever writes (the data cache passes kDataUnavailable), a file-size limit is an output failure
// naming the file. Signal and limit are restored before anything is checked.
TEST_F(FileIo, AFileSizeLimitIsAnOutputFailure) {
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  rlimit small = saved;
  small.rlim_cur = 1000;
  const auto previous = std::signal(SIGXFSZ, SIG_IGN);
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  std::vector<std::pair<ExitCode, std::string>> failures;
  auto attempt = [&](auto write) {
    try {
      write();
      failures.push_back({ExitCode::kOk, ""});
    } catch (const Error& e) {
      failures.push_back({e.code(), e.what()});
    }
  };
  attempt([&] { write_file_atomically(path("cache.gz"), std::vector<std::uint8_t>(5000, 1)); });
  attempt([&] {
    AppendFile log(path("log"), ExitCode::kBadArguments);
    log.write(std::string(5000, 'x'));
  });
  ::setrlimit(RLIMIT_FSIZE, &saved);
  std::signal(SIGXFSZ, previous);
  ASSERT_EQ(failures.size(), 2u);
  for (const auto& [code, message] : failures) {
    EXPECT_EQ(code, ExitCode::kOutputFailed) << message;
    EXPECT_NE(message.find("File too large"), std::string::npos) << message;
  }
  EXPECT_EQ(failures[0].second.rfind(path("cache.gz") + ": write failed", 0), 0u)
      << failures[0].second;
  EXPECT_FALSE(fs::exists(path("cache.gz")));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1)
      << "only the log: no temporary left behind";
}

TEST_F(FileIo, PathsNoFileSystemCanHoldAreBadArguments) {
  auto refusal = [](const std::string& p, std::size_t appended) -> std::string {
    try {
      check_path_fits(p, appended, "--flag");
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ExitCode::kBadArguments) << e.what();
      return e.what();
    }
    return "";
  };
  const long name_max = ::pathconf(dir_.c_str(), _PC_NAME_MAX);
  ASSERT_GT(name_max, 0);
  EXPECT_EQ(refusal(path("plain"), kTemporarySuffixBytes), "");
  EXPECT_EQ(refusal((dir_ / std::string(name_max, 'n')).string(), kTemporarySuffixBytes), "");
  EXPECT_EQ(refusal("relative/name", 100), "");
  const std::string too_long = (dir_ / "sub" / std::string(name_max + 1, 'n')).string();
  EXPECT_NE(refusal(too_long, 0)
                .find("is " + std::to_string(name_max + 1) + " bytes, more than the " +
                      std::to_string(name_max) + " its file system allows (NAME_MAX)"),
            std::string::npos)
      << refusal(too_long, 0);
  EXPECT_FALSE(fs::exists(dir_ / "sub")) << "nothing is created";
  // Under PATH_MAX itself, but not with what is written there.
  std::string deep = dir_.string();
  while (deep.size() < PATH_MAX - 60) deep += "/" + std::string(50, 'd');
  EXPECT_EQ(refusal(deep, 0), "");
  EXPECT_NE(refusal(deep, 100).find("(PATH_MAX)"), std::string::npos) << refusal(deep, 100);
  EXPECT_NE(refusal(deep, 100).find("--flag " + deep.substr(0, 60) + "..."), std::string::npos)
      << "a long path is shown by its start";
}

TEST_F(FileIo, AppendsNeverTruncateNorFollowLinks) {
  {
    AppendFile f(path("log"), ExitCode::kOutputFailed);
    f.write("one\n");
  }
  {
    AppendFile f(path("log"), ExitCode::kOutputFailed);
    f.write("two\n");
  }
  EXPECT_EQ(read_file(path("log"), 100),
            (std::vector<std::uint8_t>{'o', 'n', 'e', '\n', 't', 'w', 'o', '\n'}));
  fs::create_symlink(path("log"), path("planted"));
  EXPECT_THROW(AppendFile(path("planted"), ExitCode::kOutputFailed), Error);
  ASSERT_EQ(::mkfifo(path("fifo").c_str(), 0600), 0);  // opening it must not wait for a reader
  EXPECT_THROW(AppendFile(path("fifo"), ExitCode::kOutputFailed), Error);
  if (fs::exists("/dev/full")) {
    try {
      AppendFile full("/dev/full", ExitCode::kOutputFailed);
      ADD_FAILURE() << "a device is not a log file";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ExitCode::kOutputFailed);
    }
  }
}

TEST_F(FileIo, AFolderInUseIsReportedNotWaitedFor) {
  fs::create_directory(path(".lock"));  // something planted under the lock's name is replaced
  FolderLock held(dir_.string());
  FolderLock other_purpose(dir_.string(), "busy", FolderLock::kRunLock);  // a separate lock
  try {
    FolderLock second(dir_.string(), "busy");
    ADD_FAILURE() << "the second lock must not be granted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kBadArguments);
    EXPECT_STREQ(e.what(), "busy");
  }
}

TEST_F(FileIo, UnwritableFoldersAreFoundAtOnce) {
  write_file_atomically(path("file"), {'x'});
  EXPECT_THROW(ensure_writable_directory(path("file"), "--log_dir", ExitCode::kOutputFailed),
               Error);
  EXPECT_THROW(
      ensure_writable_directory(path("file") + "/below", "--log_dir", ExitCode::kOutputFailed),
      Error);
  ensure_writable_directory(path("new/deeper"), "--log_dir", ExitCode::kOutputFailed);
  EXPECT_TRUE(fs::is_directory(path("new/deeper")));
}

TEST_F(FileIo, OtherUsersLinksOnThePathAreRefused) {
  fs::create_directory(path("real"));
  fs::create_directory_symlink(path("real"), path("mine"));
  ensure_writable_directory(path("mine") + "/logs", "--log_dir", ExitCode::kOutputFailed);
  if (::geteuid() != 0) GTEST_SKIP() << "planting another user's link needs root";
  fs::create_directory_symlink(path("real"), path("theirs"));
  ASSERT_EQ(::lchown(path("theirs").c_str(), 4242, 4242), 0);
  try {
    ensure_writable_directory(path("theirs") + "/logs", "--log_dir", ExitCode::kOutputFailed);
    ADD_FAILURE() << "another user's link must not be followed";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kOutputFailed);
    EXPECT_NE(std::string(e.what()).find("uid 4242"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace mnist
