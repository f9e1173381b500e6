// The Event and Summary messages of TensorBoard event files, encoded by hand (summary/protobuf.h).
// Field numbers: tensorflow/core/util/event.proto (Event), tensorflow/core/framework/summary.proto
// (Summary, Summary.Value, Summary.Image, SummaryMetadata), histogram.proto (HistogramProto),
// tensor.proto and tensor_shape.proto (TensorProto, TensorShapeProto), types.proto (DT_STRING).
// Values use the TF1 forms the sample's summaries had (simple_value, histo, image), which
// TensorBoard reads directly; text is the text plugin's string tensor.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "summary/histogram.h"

namespace mnist {

// The file version TensorBoard expects in an event file's first record.
inline constexpr std::string_view kEventFileVersion = "brain.Event:2";

// Event{wall_time, file_version}: the first record of every event file.
std::string encode_version_event(double wall_time);

// A Summary message: the values of one step, for one Event.
class SummaryBuilder {
 public:
  // A scalar (Summary.Value.simple_value).
  SummaryBuilder& scalar(std::string_view tag, float value);
  // A histogram (Summary.Value.histo).
  SummaryBuilder& histogram(std::string_view tag, const Histogram& histogram);
  // An encoded image (Summary.Value.image): PNG bytes, its size and channel count (1 grey,
  // 2 grey + alpha, 3 RGB, 4 RGBA: Summary.Image's colorspace).
  SummaryBuilder& image(std::string_view tag, std::string_view png, int height, int width,
                        int channels);
  // Text (Markdown) for the text plugin: a scalar DT_STRING tensor with plugin_name "text".
  SummaryBuilder& text(std::string_view tag, std::string_view text);

  bool empty() const { return bytes_.empty(); }
  const std::string& bytes() const { return bytes_; }

 private:
  std::string bytes_;  // the encoded Summary: its repeated `value` fields
};

// Event{wall_time, step, summary}.
std::string encode_summary_event(double wall_time, std::int64_t step,
                                 const SummaryBuilder& summary);

}  // namespace mnist
