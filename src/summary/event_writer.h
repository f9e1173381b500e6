// A TensorBoard event file writer: DIR/events.out.tfevents.<unix seconds>.<hostname>, a new file
// per writer (a resumed run adds a file beside the earlier ones, never touching them), the version
// record first, then one record per Event. Each record goes to the OS in one write(2) as it is
// added (no user-space buffer), so a TensorBoard pointed at a live run follows it.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "summary/event.h"
#include "summary/histogram.h"

namespace mnist {

// Seconds since the Unix epoch, with the clock's resolution (an Event's wall_time).
double wall_clock_seconds();

// One thread writes through a writer (nothing here locks).
class EventWriter {
 public:
  using Clock = std::function<double()>;  // seconds since the Unix epoch

  // Creates the file in `dir`, which must exist (ensure_writable_directory checks and creates
  // it), and writes the version record. The name takes its seconds from `clock`'s first reading;
  // when it is taken (two writers within a second), ".001", ".002", ... is added. Opened with
  // O_EXCL and O_NOFOLLOW: an existing file or a link under the name is never written through.
  // Throws Error(kOutputFailed) naming the path and the OS error.
  explicit EventWriter(const std::string& dir, Clock clock = wall_clock_seconds);
  ~EventWriter();
  EventWriter(EventWriter&& other) noexcept;
  EventWriter& operator=(EventWriter&& other) noexcept;
  EventWriter(const EventWriter&) = delete;
  EventWriter& operator=(const EventWriter&) = delete;

  const std::string& path() const { return path_; }

  // One Event{wall_time, step, summary} with all of `summary`'s values (nothing when empty).
  // Throws Error(kOutputFailed, "PATH: write failed: ...") when the write fails; a writer that
  // failed once refuses every later write the same way (the file may end in a partial record).
  void write(std::int64_t step, const SummaryBuilder& summary);
  // The same with the Event's wall_time given (when the values were measured, not written).
  void write(std::int64_t step, const SummaryBuilder& summary, double wall_time);

  // One Event holding one value each.
  void add_scalar(std::string_view tag, std::int64_t step, float value);
  // Throws Error(kDiverged) naming the tag for a NaN or Inf among `values` (as TF's op does).
  void add_histogram(std::string_view tag, std::int64_t step, const std::vector<float>& values);
  void add_histogram(std::string_view tag, std::int64_t step, const Histogram& histogram);
  void add_image(std::string_view tag, std::int64_t step, std::string_view png, int height,
                 int width, int channels);
  // `pixels`: height rows of width 8-bit grey samples, encoded as PNG here.
  void add_gray_image(std::string_view tag, std::int64_t step, const std::uint8_t* pixels,
                      int height, int width);
  void add_text(std::string_view tag, std::int64_t step, std::string_view text);

 private:
  void write_record(const std::string& event);

  int fd_ = -1;
  std::string path_;
  Clock clock_;
  std::string failure_;  // the first write failure's message; empty while writes succeed
};

}  // namespace mnist
