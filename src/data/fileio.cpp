#include "data/fileio.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <filesystem>
#include <random>
#include <thread>
#include <utility>

#include "stop.h"

namespace mnist {
namespace fs = std::filesystem;

namespace {

class FileDescriptor {  // RAII for a POSIX file descriptor
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string os_error() { return std::strerror(errno); }

// A name no other process or thread picks: pid, a per-process counter and random bits.
std::string unique_suffix() {
  static std::atomic<unsigned> counter{0};
  static const unsigned long long salt = std::random_device{}();
  return ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++) + "." +
         std::to_string(salt % 1000000007ULL);
}

// A write stopped by a limit of the disk or of the process (full, over quota, past the file-size
// limit, `ulimit -f`) is an output failure, whoever writes: no retry and no other mirror helps.
ExitCode code_for(int error, ExitCode code) {
  return error == ENOSPC || error == EDQUOT || error == EFBIG ? ExitCode::kOutputFailed : code;
}

void write_all(int fd, const std::uint8_t* data, std::size_t size, const std::string& path,
               ExitCode code) {
  for (std::size_t done = 0; done < size;) {
    const ssize_t n = ::write(fd, data + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) throw Error(code, path + ": write failed: no progress");
    if (n < 0) throw Error(code_for(errno, code), path + ": write failed: " + os_error());
    done += static_cast<std::size_t>(n);
  }
}

// The longest file name the file system holding `dir` takes.
std::size_t name_limit(const std::string& dir) {
  const long limit = ::pathconf(dir.empty() ? "." : dir.c_str(), _PC_NAME_MAX);
  return limit > 0 ? static_cast<std::size_t>(limit) : NAME_MAX;
}

// `path`'s temporary, in the same folder: its name with a unique suffix, the name cut so that
// both fit in the folder's name limit (a legal 255-byte name still gets a legal temporary).
std::string temporary_for(const std::string& path) {
  const fs::path p(path);
  const std::string suffix = unique_suffix();
  std::string name = p.filename().string();
  const std::size_t limit = name_limit(p.parent_path().string());
  if (name.size() + suffix.size() > limit)
    name.resize(limit > suffix.size() ? limit - suffix.size() : 0);
  return (p.parent_path() / (name + suffix)).string();
}

// `path` as a message shows it: a path of thousands of bytes by its start.
std::string shown(const std::string& path) {
  return path.size() <= 100 ? path : path.substr(0, 60) + "...";
}

}  // namespace

FileKind file_kind(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return FileKind::kMissing;
  return S_ISREG(st.st_mode) ? FileKind::kRegular : FileKind::kOther;
}

void remove_entry(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    std::error_code ec;
    fs::remove_all(path, ec);  // remove_all does not follow links inside
  } else {
    ::unlink(path.c_str());
  }
}

std::vector<std::uint8_t> read_file(const std::string& path, std::size_t max_bytes, ExitCode code) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer; O_NOFOLLOW: never through a link.
  FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ELOOP) throw Error(code, path + ": is a symbolic link (refused)");
    throw Error(code, path + ": cannot open: " + os_error());
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw Error(code, path + ": cannot stat: " + os_error());
  if (!S_ISREG(st.st_mode)) throw Error(code, path + ": is not a regular file");
  if (static_cast<std::uint64_t>(st.st_size) > max_bytes) {
    throw Error(code, path + ": is " + std::to_string(st.st_size) + " bytes, more than the " +
                          std::to_string(max_bytes) + " expected");
  }
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(st.st_size));
  for (std::size_t done = 0; done < bytes.size();) {
    const ssize_t n = ::read(fd.get(), bytes.data() + done, bytes.size() - done);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) throw Error(code, path + ": read failed: " + os_error());
    if (n == 0) throw Error(code, path + ": shrank while being read");
    done += static_cast<std::size_t>(n);
  }
  return bytes;
}

void write_file_atomically(const std::string& path, const std::vector<std::uint8_t>& bytes,
                           ExitCode code, bool durable) {
  const std::string temp = temporary_for(path);
  auto fail = [&](const std::string& what) {
    const int error = errno;
    ::unlink(temp.c_str());
    return Error(code_for(error, code), path + ": " + what + ": " + std::strerror(error));
  };
  {
    FileDescriptor fd(
        ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
    if (fd.get() < 0) throw fail("cannot create " + temp);
    try {
      write_all(fd.get(), bytes.data(), bytes.size(), path, code);
    } catch (const Error&) {
      ::unlink(temp.c_str());
      throw;
    }
    if (durable && ::fsync(fd.get()) != 0) throw fail("fsync failed");
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) throw fail("rename failed");
  if (!durable) return;
  const std::string dir = fs::path(path).parent_path().string();
  FileDescriptor dir_fd(
      ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir_fd.get() >= 0) ::fsync(dir_fd.get());
}

void check_path_fits(const std::string& path, std::size_t appended, const std::string& flag) {
  // PATH_MAX counts the terminating NUL.
  if (path.size() + appended >= PATH_MAX) {
    throw Error(ExitCode::kBadArguments,
                flag + " " + shown(path) + ": a path of " + std::to_string(path.size()) +
                    " bytes; with what is written there (up to " + std::to_string(appended) +
                    " bytes more) it is longer than the system's limit of " +
                    std::to_string(PATH_MAX - 1) + " (PATH_MAX)");
  }
  const fs::path whole(path);
  fs::path walked = whole.is_absolute() ? "/" : ".";
  std::size_t limit = name_limit(walked.string());
  for (const fs::path& part : whole.relative_path()) {
    const std::string name = part.string();
    if (name.size() > limit) {
      throw Error(ExitCode::kBadArguments, flag + " " + shown(path) + ": the name " + shown(name) +
                                               " is " + std::to_string(name.size()) +
                                               " bytes, more than the " + std::to_string(limit) +
                                               " its file system allows (NAME_MAX)");
    }
    walked /= part;
    struct stat st {};
    if (::stat(walked.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
      limit = name_limit(walked.string());
  }
}

void refuse_foreign_links(const std::string& path, const std::string& flag, ExitCode code) {
  fs::path walked;
  for (const fs::path& part : fs::absolute(path).lexically_normal()) {
    walked /= part;
    struct stat st {};
    if (::lstat(walked.c_str(), &st) != 0) return;  // the rest does not exist yet: we create it
    if (S_ISLNK(st.st_mode) && st.st_uid != ::geteuid() && st.st_uid != 0) {
      throw Error(code, walked.string() + ": a symbolic link owned by another user (uid " +
                            std::to_string(st.st_uid) + ") is on the path of " + flag +
                            "; refusing to follow it");
    }
  }
}

void ensure_writable_directory(const std::string& dir, const std::string& flag, ExitCode code) {
  refuse_foreign_links(dir, flag, code);
  std::error_code ec, is_dir_ec;
  fs::create_directories(dir, ec);
  if (!fs::is_directory(dir, is_dir_ec)) {
    throw Error(code, dir + ": cannot create folder (" + flag + ")" +
                          (ec ? ": " + ec.message() : ": a file of that name is in the way"));
  }
  const std::string probe = (fs::path(dir) / ("write-probe" + unique_suffix())).string();
  FileDescriptor fd(
      ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (fd.get() < 0)
    throw Error(code, dir + ": cannot write files there (" + flag + "): " + os_error());
  ::unlink(probe.c_str());
}

AppendFile::AppendFile(const std::string& path, ExitCode code) : path_(path), code_(code) {
  if (file_kind(path) == FileKind::kOther)  // a FIFO would block the open, a link be followed
    throw Error(code, path + ": is not a regular file (remove it)");
  fd_ = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC,
               0644);
  if (fd_ < 0)
    throw Error(code_for(errno, code), path + ": cannot open for appending: " + os_error());
  struct stat st {};
  if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd_);
    fd_ = -1;
    throw Error(code, path + ": is not a regular file");
  }
}

AppendFile::~AppendFile() {
  if (fd_ >= 0) ::close(fd_);
}

AppendFile::AppendFile(AppendFile&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), path_(std::move(other.path_)), code_(other.code_) {}

AppendFile& AppendFile::operator=(AppendFile&& other) noexcept {
  std::swap(fd_, other.fd_);
  std::swap(path_, other.path_);
  std::swap(code_, other.code_);
  return *this;
}

void AppendFile::write(const std::string& text) {
  write_all(fd_, reinterpret_cast<const std::uint8_t*>(text.data()), text.size(), path_, code_);
}

FolderLock::FolderLock(const std::string& dir, const std::string& busy, const char* name) {
  const std::string path = (fs::path(dir) / name).string();
  if (file_kind(path) == FileKind::kOther) remove_entry(path);  // a planted link or a folder
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
  // Another user's lock file on a shared volume: flock works on a read-only descriptor too.
  if (fd_ < 0 && errno == EACCES) fd_ = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd_ < 0)
    throw Error(ExitCode::kDataUnavailable, path + ": cannot open the lock: " + os_error());
  while (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK && errno != EINTR) {
      const std::string reason = os_error();
      ::close(fd_);
      throw Error(ExitCode::kDataUnavailable, path + ": cannot lock: " + reason);
    }
    if (!busy.empty()) {
      ::close(fd_);
      fd_ = -1;
      throw Error(ExitCode::kBadArguments, busy);
    }
    if (stop_requested()) {
      ::close(fd_);
      fd_ = -1;
      throw_stopped("while waiting for another process's download in " + dir);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

FolderLock::~FolderLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the lock
}

}  // namespace mnist
