// The event file writer (see event_writer.h).
#include "summary/event_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <utility>

#include "error.h"
#include "summary/png.h"
#include "summary/tfrecord.h"

namespace mnist {
namespace {

std::string os_error() { return std::strerror(errno); }

// The host name as a file-name part: anything but letters, digits, '.', '-' and '_' becomes '_'
// (a name never holds '/', but a file name must not, whatever gethostname returns).
std::string host_name() {
  char buffer[256] = {};
  if (::gethostname(buffer, sizeof buffer - 1) != 0 || buffer[0] == '\0') return "localhost";
  std::string name(buffer);
  for (char& c : name) {
    const bool safe = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '-' || c == '_';
    if (!safe) c = '_';
  }
  return name;
}

// TF's name, events.out.tfevents.%010lld.<host>: the seconds are zero-padded so that names sort
// by time, and TensorBoard reads a folder's files in name order.
std::string file_name(double seconds, int attempt) {
  char name[64];
  std::snprintf(name, sizeof name, "events.out.tfevents.%010lld.",
                static_cast<long long>(std::floor(seconds)));
  std::string result = name + host_name();
  if (attempt > 0) {  // ".001" sorts after the bare name and, padded, in creation order
    std::snprintf(name, sizeof name, ".%03d", attempt);
    result += name;
  }
  return result;
}

}  // namespace

double wall_clock_seconds() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

EventWriter::EventWriter(const std::string& dir, Clock clock) : clock_(std::move(clock)) {
  const double now = clock_();
  constexpr int kMaxAttempts = 1000;  // the suffixes .001 to .999
  for (int attempt = 0; fd_ < 0; ++attempt) {
    path_ = (dir.empty() || dir.back() == '/' ? dir : dir + "/") + file_name(now, attempt);
    fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                 0644);
    if (fd_ < 0 && (errno != EEXIST || attempt + 1 == kMaxAttempts)) {
      throw Error(ExitCode::kOutputFailed, path_ + ": cannot create: " + os_error());
    }
  }
  try {
    write_record(encode_version_event(now));
  } catch (const Error&) {  // no destructor runs for a constructor that throws
    ::close(std::exchange(fd_, -1));
    ::unlink(path_.c_str());  // the file holds at most part of its first record: useless
    throw;
  }
}

EventWriter::~EventWriter() {
  if (fd_ >= 0) ::close(fd_);
}

EventWriter::EventWriter(EventWriter&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      path_(std::move(other.path_)),
      clock_(std::move(other.clock_)),
      failure_(std::move(other.failure_)) {}

EventWriter& EventWriter::operator=(EventWriter&& other) noexcept {
  std::swap(fd_, other.fd_);
  std::swap(path_, other.path_);
  std::swap(clock_, other.clock_);
  std::swap(failure_, other.failure_);
  return *this;
}

void EventWriter::write_record(const std::string& event) {
  if (fd_ < 0) throw Error(ExitCode::kInternal, "EventWriter: write to a moved-from writer");
  if (!failure_.empty()) throw Error(ExitCode::kOutputFailed, failure_);
  const std::string record = tfrecord_frame(event);
  for (std::size_t done = 0; done < record.size();) {
    const ssize_t n = ::write(fd_, record.data() + done, record.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      failure_ = path_ + ": write failed: " + (n < 0 ? os_error() : "no progress");
      throw Error(ExitCode::kOutputFailed, failure_);
    }
    done += static_cast<std::size_t>(n);
  }
}

void EventWriter::write(std::int64_t step, const SummaryBuilder& summary) {
  write(step, summary, clock_());
}

void EventWriter::write(std::int64_t step, const SummaryBuilder& summary, double wall_time) {
  if (summary.empty()) return;
  write_record(encode_summary_event(wall_time, step, summary));
}

void EventWriter::add_scalar(std::string_view tag, std::int64_t step, float value) {
  write(step, SummaryBuilder().scalar(tag, value));
}

void EventWriter::add_histogram(std::string_view tag, std::int64_t step,
                                const std::vector<float>& values) {
  Histogram histogram;
  try {
    histogram = make_histogram(values);
  } catch (const Error& e) {
    throw Error(e.code(), std::string(tag) + ": " + e.what());
  }
  add_histogram(tag, step, histogram);
}

void EventWriter::add_histogram(std::string_view tag, std::int64_t step,
                                const Histogram& histogram) {
  write(step, SummaryBuilder().histogram(tag, histogram));
}

void EventWriter::add_image(std::string_view tag, std::int64_t step, std::string_view png,
                            int height, int width, int channels) {
  write(step, SummaryBuilder().image(tag, png, height, width, channels));
}

void EventWriter::add_gray_image(std::string_view tag, std::int64_t step,
                                 const std::uint8_t* pixels, int height, int width) {
  add_image(tag, step, encode_png(pixels, width, height, 1), height, width, 1);
}

void EventWriter::add_text(std::string_view tag, std::int64_t step, std::string_view text) {
  write(step, SummaryBuilder().text(tag, text));
}

}  // namespace mnist
