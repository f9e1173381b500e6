// Files in folders that other processes share (the data cache, checkpoints, logs): whole-file reads
// that refuse anything but a regular file, atomic writes through a unique temporary, checked
// appends, and a folder lock. Nothing here follows a symbolic link planted under a file's name
// (O_NOFOLLOW), waits on a FIFO, or reads a device. Files are created 0644, folders 0755.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "error.h"

namespace mnist {

// Reads a whole regular file of at most max_bytes. Throws Error(code) naming the path and the OS
// error when it is missing, a link, a folder, a FIFO or device, too large, or unreadable.
std::vector<std::uint8_t> read_file(const std::string& path, std::size_t max_bytes,
                                    ExitCode code = ExitCode::kDataUnavailable);

// What lies under a name, without following a link.
enum class FileKind { kMissing, kRegular, kOther };
FileKind file_kind(const std::string& path);

// Removes whatever non-folder entry is under `path` (a link is removed, not its target).
void remove_entry(const std::string& path);

// Writes a temporary next to `path` that no other process can have opened (unique name, O_EXCL),
// fsyncs it, renames it over `path` and fsyncs the folder: `path` is the old content or the
// complete new one, never a partial file, whoever else writes the same name at the same time.
// The temporary's name is `path`'s name, cut where needed so that it stays within the folder's
// name limit, plus at most kTemporarySuffixBytes of suffix. Throws Error(code) naming the path
// and the OS error; a disk or size limit (full, quota, the process's file-size limit) is
// Error(kOutputFailed) whatever `code` is. Not `durable`: no fsyncs (still never a partial file,
// but a crash of the machine may lose it), for files that are cheap to lose.
void write_file_atomically(const std::string& path, const std::vector<std::uint8_t>& bytes,
                           ExitCode code = ExitCode::kDataUnavailable, bool durable = true);

// The most bytes write_file_atomically adds to a name for its temporary.
constexpr std::size_t kTemporarySuffixBytes = 37;  // ".tmp." and three numbers of up to 10 digits

// Throws Error(kBadArguments) naming `flag` when no file can ever be made at `path` followed by
// `appended` more bytes (a temporary's suffix; a folder's "/" and the longest name written in it):
// a component of `path` longer than its file system's name limit (NAME_MAX), or the whole longer
// than PATH_MAX. Only lengths are looked at: nothing is created.
void check_path_fits(const std::string& path, std::size_t appended, const std::string& flag);

// Throws Error(code) when a component of `path` is a symbolic link owned by another user (not
// root, not this process's user): in a shared folder such as /tmp, a link someone else planted
// would redirect our files into a folder of their choosing.
void refuse_foreign_links(const std::string& path, const std::string& flag, ExitCode code);

// Creates the folder (and its parents) if needed; throws Error(code) unless it is a folder this
// process can create files in (checked by creating and removing a probe file) reached through no
// other user's link (refuse_foreign_links).
void ensure_writable_directory(const std::string& dir, const std::string& flag, ExitCode code);

// A file opened for appending (created if missing, never truncated, never through a link). Every
// write is checked and flushed to the OS; a failure throws Error(code) naming the path (a disk or
// size limit: Error(kOutputFailed)).
class AppendFile {
 public:
  AppendFile() = default;
  AppendFile(const std::string& path, ExitCode code);
  ~AppendFile();
  AppendFile(AppendFile&& other) noexcept;
  AppendFile& operator=(AppendFile&& other) noexcept;
  AppendFile(const AppendFile&) = delete;
  AppendFile& operator=(const AppendFile&) = delete;

  bool is_open() const { return fd_ >= 0; }
  void write(const std::string& text);

 private:
  int fd_ = -1;
  std::string path_;
  ExitCode code_ = ExitCode::kBadArguments;
};

// An exclusive advisory lock (flock) on `dir`/`name`, held while the object lives. Processes that
// share a folder (pods on one volume, two runs on a box) take turns; waiting polls the stop
// request, so a signal still stops a waiting process within about a second. With `busy` set, a
// folder already locked is not waited for: Error(kBadArguments, `busy`) instead. Something other
// than a regular file under the lock's name (a folder, a link) is removed and replaced.
class FolderLock {
 public:
  static constexpr const char* kDataLock = ".lock";     // the data cache: one fetch per file
  static constexpr const char* kRunLock = ".run.lock";  // a checkpoint folder: one run at a time
  explicit FolderLock(const std::string& dir, const std::string& busy = "",
                      const char* name = kDataLock);
  ~FolderLock();
  FolderLock(const FolderLock&) = delete;
  FolderLock& operator=(const FolderLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace mnist
