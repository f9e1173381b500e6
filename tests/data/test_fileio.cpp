// Files in shared folders: no links followed, no FIFO waited on, unique temporaries, appends that
// never truncate, a folder lock, and other users' links refused.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
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
