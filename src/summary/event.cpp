// Event and Summary encoding (see event.h). Each message is written in field-number order, with
// proto3's omissions (summary/protobuf.h), so the bytes equal what protobuf's serializer makes.
#include "summary/event.h"

#include "summary/protobuf.h"

namespace mnist {
namespace {

// Event (event.proto).
enum EventField { kWallTime = 1, kStep = 2, kFileVersion = 3, kSummary = 5 };
// Summary (summary.proto): its one field, `repeated Value value = 1`.
constexpr int kSummaryValue = 1;
// Summary.Value.
enum ValueField { kTag = 1, kSimpleValue = 2, kImage = 4, kHisto = 5, kTensor = 8, kMetadata = 9 };
// Summary.Image.
enum ImageField { kHeight = 1, kWidth = 2, kColorspace = 3, kEncodedImage = 4 };
// HistogramProto (histogram.proto).
enum HistogramField {
  kMin = 1,
  kMax = 2,
  kNum = 3,
  kSum = 4,
  kSumSquares = 5,
  kBucketLimit = 6,
  kBucket = 7
};
// SummaryMetadata and its PluginData.
constexpr int kPluginData = 1;
enum PluginDataField { kPluginName = 1, kContent = 2 };
// TensorProto (tensor.proto); DataType DT_STRING (types.proto).
enum TensorField { kDtype = 1, kTensorShape = 2, kStringVal = 8 };
constexpr int kDtString = 7;

void add_value(std::string& summary, const ProtoWriter& value) {
  ProtoWriter field;
  field.message(kSummaryValue, value);
  summary += field.bytes();
}

}  // namespace

std::string encode_version_event(double wall_time) {
  ProtoWriter event;
  event.double_nonzero(kWallTime, wall_time);
  event.bytes(kFileVersion, kEventFileVersion);
  return event.bytes();
}

SummaryBuilder& SummaryBuilder::scalar(std::string_view tag, float value) {
  ProtoWriter v;
  v.bytes(kTag, tag);
  v.float_field(kSimpleValue, value);  // a oneof member: written even when 0
  add_value(bytes_, v);
  return *this;
}

SummaryBuilder& SummaryBuilder::histogram(std::string_view tag, const Histogram& histogram) {
  ProtoWriter h;
  h.double_nonzero(kMin, histogram.min);
  h.double_nonzero(kMax, histogram.max);
  h.double_nonzero(kNum, histogram.num);
  h.double_nonzero(kSum, histogram.sum);
  h.double_nonzero(kSumSquares, histogram.sum_squares);
  h.packed_doubles(kBucketLimit, histogram.bucket_limits);
  h.packed_doubles(kBucket, histogram.bucket_counts);
  ProtoWriter v;
  v.bytes(kTag, tag);
  v.message(kHisto, h);
  add_value(bytes_, v);
  return *this;
}

SummaryBuilder& SummaryBuilder::image(std::string_view tag, std::string_view png, int height,
                                      int width, int channels) {
  ProtoWriter image;
  image.int64_nonzero(kHeight, height);
  image.int64_nonzero(kWidth, width);
  image.int64_nonzero(kColorspace, channels);
  image.bytes_nonempty(kEncodedImage, png);
  ProtoWriter v;
  v.bytes(kTag, tag);
  v.message(kImage, image);
  add_value(bytes_, v);
  return *this;
}

SummaryBuilder& SummaryBuilder::text(std::string_view tag, std::string_view text) {
  ProtoWriter tensor;
  tensor.varint(kDtype, kDtString);
  tensor.message(kTensorShape, ProtoWriter{});  // rank 0: a shape with no dims
  tensor.bytes(kStringVal, text);
  // The text plugin's content is a TextPluginData{version = 0}, which encodes to no bytes.
  ProtoWriter plugin;
  plugin.bytes(kPluginName, "text");
  ProtoWriter metadata;
  metadata.message(kPluginData, plugin);
  ProtoWriter v;
  v.bytes(kTag, tag);
  v.message(kTensor, tensor);
  v.message(kMetadata, metadata);
  add_value(bytes_, v);
  return *this;
}

std::string encode_summary_event(double wall_time, std::int64_t step,
                                 const SummaryBuilder& summary) {
  ProtoWriter event;
  event.double_nonzero(kWallTime, wall_time);
  event.int64_nonzero(kStep, step);
  event.bytes(kSummary, summary.bytes());  // a oneof member: written even when empty
  return event.bytes();
}

}  // namespace mnist
