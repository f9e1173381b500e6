// The TensorBoard event file writer's parts against published vectors and hand-built bytes:
// CRC-32C (RFC 3720), TFRecord framing (records from TensorFlow's and tensorboard_logger's own
// tests), the protobuf encoding of each message, TF's histogram buckets, PNG (decoded here with
// zlib), and the writer's file: its name, flushing, append safety and checked writes.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>
#include <zlib.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "error.h"
#include "summary/crc32c.h"
#include "summary/event.h"
#include "summary/event_writer.h"
#include "summary/histogram.h"
#include "summary/png.h"
#include "summary/protobuf.h"
#include "summary/tfrecord.h"

namespace mnist {
namespace {

namespace fs = std::filesystem;
using namespace std::string_literals;

// Bytes from a list of values, for hand-built expectations.
std::string bytes(std::initializer_list<int> values) {
  std::string out;
  for (int v : values) out.push_back(static_cast<char>(v));
  return out;
}

std::string le64(std::uint64_t v) {
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
  return out;
}

std::string le32(std::uint32_t v) { return le64(v).substr(0, 4); }

std::string le_double(double d) {
  std::uint64_t bits = 0;
  std::memcpy(&bits, &d, 8);
  return le64(bits);
}

std::string le_float(float f) {
  std::uint32_t bits = 0;
  std::memcpy(&bits, &f, 4);
  return le32(bits);
}

double double_of_bits(std::uint64_t bits) {
  double d = 0;
  std::memcpy(&d, &bits, 8);
  return d;
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

ExitCode code_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code();
  }
  return ExitCode::kOk;
}

// --- CRC-32C ---------------------------------------------------------------------------------

TEST(Crc32c, MatchesPublishedVectors) {
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);  // the standard check value
  // RFC 3720, B.4.
  EXPECT_EQ(crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(crc32c(std::string(32, '\xFF')), 0x62A8AB43u);
  std::string ascending, descending;
  for (int i = 0; i < 32; ++i) {
    ascending.push_back(static_cast<char>(i));
    descending.push_back(static_cast<char>(31 - i));
  }
  EXPECT_EQ(crc32c(ascending), 0x46DD794Eu);
  EXPECT_EQ(crc32c(descending), 0x113FDB5Cu);
  EXPECT_EQ(crc32c(""), 0u);
}

TEST(Crc32c, ContinuesAcrossPieces) {
  const std::string all = "123456789";
  EXPECT_EQ(crc32c(all.data() + 4, 5, crc32c(all.data(), 4)), crc32c(all));
}

TEST(Crc32c, MasksAsTfRecordDoes) {
  EXPECT_EQ(mask_crc32c(0), 0xA282EAD8u);
  // Every event file starts 18 00 00 00 00 00 00 00 a3 7f 4b 22: the masked CRC of length 24.
  EXPECT_EQ(mask_crc32c(crc32c(le64(24))), 0x224B7FA3u);
}

// --- TFRecord and the version event ------------------------------------------------------------

TEST(TfRecord, VersionEventBuiltFromTheSpec) {
  const double wall_time = 1700000000.5;
  // Event{wall_time = 1 (fixed64), file_version = 3 (length-delimited)}: 24 bytes.
  const std::string event = "\x09"s + le_double(wall_time) + "\x1a\x0d" + "brain.Event:2";
  ASSERT_EQ(event.size(), 24u);
  EXPECT_EQ(encode_version_event(wall_time), event);
  // The CRCs come from a bit-at-a-time CRC-32C written apart from this one (Python).
  const std::string record = le64(24) + le32(0x224B7FA3) + event + le32(0x1031352B);
  EXPECT_EQ(tfrecord_frame(event), record);
  EXPECT_EQ(record.size(), 40u);
}

TEST(TfRecord, MatchesRecordsPublishedByOtherWriters) {
  // TensorFlow's gcs_file_loader_test: the brain.Event:2 record at wall_time 1456445596.
  const double tf_time = double_of_bits(0x41D5B3E627000000ull);
  EXPECT_EQ(tf_time, 1456445596.0);
  EXPECT_EQ(tfrecord_frame(encode_version_event(tf_time)),
            "\x18\0\0\0\0\0\0\0\xa3\x7fK\"\t\0\0\0'\xe6\xb3\xd5"
            "A\x1a\rbrain.Event:2jM\x0b\x15"s);
  // tensorboard_logger's test_serialization: wall_time 256.5, then scalars v/1 = 1.5 at step 1
  // and v/22 = 16 at step 2.
  EXPECT_EQ(tfrecord_frame(encode_version_event(256.5)),
            "\x18\0\0\0\0\0\0\0\xa3\x7fK\"\t\0\0\0\0\0\x08p@\x1a\rbrain.Event:2\xbc\x98!+"s);
  EXPECT_EQ(tfrecord_frame(encode_summary_event(256.5, 1, SummaryBuilder().scalar("v/1", 1.5f))),
            "\x19\0\0\0\0\0\0\0\x8b\xf1\x08(\t\0\0\0\0\0\x08p@\x10\x01*\x0c\n\n\n\x03v/1\x15\0\0"
            "\xc0?,\xec\xc0\x87"s);
  EXPECT_EQ(tfrecord_frame(encode_summary_event(256.5, 2, SummaryBuilder().scalar("v/22", 16.0f))),
            "\x1a\0\0\0\0\0\0\0\x12\x9b\xd8-\t\0\0\0\0\0\x08p@\x10\x02*\r\n\x0b\n\x04v/22\x15\0\0"
            "\x80"
            "A\x8f\xa3\xb6\x88"s);
}

TEST(TfRecord, FramesEmptyAndLargeData) {
  const std::string empty = tfrecord_frame("");
  EXPECT_EQ(empty, le64(0) + le32(mask_crc32c(crc32c(le64(0)))) + le32(mask_crc32c(0)));
  const std::string data(300000, 'x');
  const std::string record = tfrecord_frame(data);
  ASSERT_EQ(record.size(), data.size() + 16);
  EXPECT_EQ(record.substr(0, 8), le64(300000));
  EXPECT_EQ(record.substr(12, data.size()), data);
}

// --- protobuf --------------------------------------------------------------------------------

std::string varint(std::uint64_t v) {
  std::string out;
  append_varint(out, v);
  return out;
}

TEST(Protobuf, EncodesVarints) {
  EXPECT_EQ(varint(0), bytes({0x00}));
  EXPECT_EQ(varint(1), bytes({0x01}));
  EXPECT_EQ(varint(127), bytes({0x7F}));
  EXPECT_EQ(varint(128), bytes({0x80, 0x01}));
  EXPECT_EQ(varint(300), bytes({0xAC, 0x02}));  // the protobuf documentation's example
  EXPECT_EQ(varint(std::numeric_limits<std::uint64_t>::max()),
            bytes({0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}));
  ProtoWriter negative;  // int64 -1: ten bytes of two's complement
  negative.int64(2, -1);
  EXPECT_EQ(negative.bytes(),
            bytes({0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}));
}

TEST(Protobuf, EncodesTheDocumentationsMessages) {
  ProtoWriter test1;  // message Test1 { int32 a = 1; } with a = 150
  test1.varint(1, 150);
  EXPECT_EQ(test1.bytes(), bytes({0x08, 0x96, 0x01}));
  ProtoWriter test2;  // message Test2 { string b = 2; } with b = "testing"
  test2.bytes(2, "testing");
  EXPECT_EQ(test2.bytes(), "\x12\x07testing"s);
  ProtoWriter test3;  // message Test3 { Test1 c = 3; }
  test3.message(3, test1);
  EXPECT_EQ(test3.bytes(), bytes({0x1A, 0x03, 0x08, 0x96, 0x01}));
  ProtoWriter large_field;  // field 16 needs a two-byte key
  large_field.varint(16, 1);
  EXPECT_EQ(large_field.bytes(), bytes({0x80, 0x01, 0x01}));
}

TEST(Protobuf, EncodesFixedWidthAndPackedFields) {
  ProtoWriter w;
  w.double_field(1, 1.0);
  w.float_field(2, 1.5f);
  w.packed_doubles(6, {1.0, -2.0});
  EXPECT_EQ(w.bytes(), "\x09"s + le_double(1.0) + "\x15" + le_float(1.5f) + "\x32\x10" +
                           le_double(1.0) + le_double(-2.0));
}

TEST(Protobuf, LeavesOutProto3DefaultsOnlyWhereAsked) {
  ProtoWriter w;
  w.double_nonzero(1, 0.0);
  w.int64_nonzero(2, 0);
  w.bytes_nonempty(3, "");
  w.packed_doubles(4, {});
  EXPECT_EQ(w.bytes(), "");
  w.double_nonzero(1, -0.0);  // not the default: its bits differ from +0
  EXPECT_EQ(w.bytes(), "\x09"s + le_double(-0.0));
  ProtoWriter always;
  always.float_field(2, 0.0f);
  always.bytes(3, "");
  EXPECT_EQ(always.bytes(), "\x15\0\0\0\0\x1a\0"s);
}

// --- the summary messages --------------------------------------------------------------------

// Summary{value = 1: Value{...}} around the hand-built Value bytes.
std::string summary_of(const std::string& value) { return "\x0a"s + varint(value.size()) + value; }

TEST(SummaryMessages, ScalarKeepsAZero) {
  // Value{tag = 1, simple_value = 2}: simple_value is a oneof member, written even when 0.
  const std::string value = "\x0a\x04loss\x15"s + le_float(0.0f);
  EXPECT_EQ(SummaryBuilder().scalar("loss", 0.0f).bytes(), summary_of(value));
}

TEST(SummaryMessages, SeveralValuesInOneEvent) {
  const std::string a =
      "\x0a\x01"
      "a\x15"s +
      le_float(1.0f);
  const std::string b =
      "\x0a\x01"
      "b\x15"s +
      le_float(-2.0f);
  const SummaryBuilder s = SummaryBuilder().scalar("a", 1.0f).scalar("b", -2.0f);
  EXPECT_EQ(s.bytes(), summary_of(a) + summary_of(b));
  // Event{wall_time = 1, step = 2, summary = 5}.
  EXPECT_EQ(encode_summary_event(2.0, 300, s), "\x09"s + le_double(2.0) + "\x10\xac\x02" + "\x2a" +
                                                   varint(s.bytes().size()) + s.bytes());
  // Step 0 and wall_time 0 are proto3 defaults: left out; an empty summary is still a summary.
  EXPECT_EQ(encode_summary_event(0.0, 0, SummaryBuilder()), "\x2a\x00"s);
  EXPECT_EQ(encode_summary_event(0.0, -1, SummaryBuilder()),
            bytes({0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0x2A, 0x00}));
}

TEST(SummaryMessages, Histogram) {
  Histogram h;
  h.min = -1;
  h.max = 0;  // the default: left out
  h.num = 2;
  h.sum = -1;
  h.sum_squares = 1;
  h.bucket_limits = {-0.9, DBL_MAX};
  h.bucket_counts = {1, 1};
  const std::string histo = "\x09"s + le_double(-1) + "\x19" + le_double(2) + "\x21" +
                            le_double(-1) + "\x29" + le_double(1) + "\x32\x10" + le_double(-0.9) +
                            le_double(DBL_MAX) + "\x3a\x10" + le_double(1) + le_double(1);
  const std::string value = "\x0a\x01h\x2a"s + varint(histo.size()) + histo;  // histo = 5
  EXPECT_EQ(SummaryBuilder().histogram("h", h).bytes(), summary_of(value));
}

TEST(SummaryMessages, Image) {
  // Summary.Image{height = 1, width = 2, colorspace = 3, encoded_image_string = 4}.
  const std::string image = "\x08\x1c\x10\x1c\x18\x01\x22\x03png"s;
  const std::string value = "\x0a\x03img\x22"s + varint(image.size()) + image;  // image = 4
  EXPECT_EQ(SummaryBuilder().image("img", "png", 28, 28, 1).bytes(), summary_of(value));
}

TEST(SummaryMessages, TextIsAStringTensorForTheTextPlugin) {
  // TensorProto{dtype = 1: DT_STRING (7), tensor_shape = 2: {} (rank 0), string_val = 8}.
  const std::string tensor = "\x08\x07\x12\x00\x42\x02hi"s;
  // SummaryMetadata{plugin_data = 1: PluginData{plugin_name = 1: "text"}}.
  const std::string metadata = "\x0a\x06\x0a\x04text"s;
  const std::string value = "\x0a\x05notes\x42"s + varint(tensor.size()) + tensor + "\x4a" +
                            varint(metadata.size()) + metadata;  // tensor = 8, metadata = 9
  EXPECT_EQ(SummaryBuilder().text("notes", "hi").bytes(), summary_of(value));
}

// --- histograms ------------------------------------------------------------------------------

TEST(HistogramBuckets, AreTensorFlowsDefaults) {
  const std::vector<double>& limits = default_bucket_limits();
  ASSERT_EQ(limits.size(), 1551u);  // 774 positive edges below 1e20, mirrored, 0, +-DBL_MAX
  EXPECT_EQ(limits.front(), -DBL_MAX);
  EXPECT_EQ(limits.back(), DBL_MAX);
  EXPECT_EQ(limits[775], 0.0);
  EXPECT_EQ(limits[776], 1e-12);
  EXPECT_EQ(limits[777], 1e-12 * 1.1);
  EXPECT_LT(limits[1549], 1e20);
  EXPECT_GT(limits[1549] * 1.1, 1e20);
  for (std::size_t i = 0; i < limits.size(); ++i) {
    EXPECT_EQ(limits[i], -limits[limits.size() - 1 - i]);
    if (i > 0) {
      EXPECT_LT(limits[i - 1], limits[i]);
    }
  }
}

TEST(HistogramBuckets, HoldValuesFromTheirLeftEdgeUpToTheNext) {
  EXPECT_EQ(default_bucket_index(0.0), 776u);  // [0, 1e-12)
  EXPECT_EQ(default_bucket_index(-0.0), 776u);
  EXPECT_EQ(default_bucket_index(1e-13), 776u);
  EXPECT_EQ(default_bucket_index(1e-12), 777u);   // a limit itself opens the next bucket
  EXPECT_EQ(default_bucket_index(-1e-13), 775u);  // [-1e-12, 0)
  EXPECT_EQ(default_bucket_index(1e25), 1550u);   // past 1e20: [last limit, DBL_MAX)
  EXPECT_EQ(default_bucket_index(-1e25), 1u);     // [-DBL_MAX, -limit): bucket 0 stays empty
  EXPECT_EQ(default_bucket_index(-DBL_MAX), 1u);
  EXPECT_EQ(default_bucket_index(DBL_MAX), 1550u);
  const std::vector<double>& limits = default_bucket_limits();
  for (double v : {0.5, -0.5, 3.0, -1e-5, 123456.0}) {
    const std::size_t i = default_bucket_index(v);
    EXPECT_LE(limits[i - 1], v);
    EXPECT_LT(v, limits[i]);
  }
}

TEST(HistogramBuckets, DropEmptyRunsAsTensorFlowDoes) {
  const Histogram h = make_histogram({1.0f, 1.0f, -2.0f});
  const std::vector<double>& limits = default_bucket_limits();
  const std::size_t neg = default_bucket_index(-2.0), pos = default_bucket_index(1.0);
  // An empty run up to -2's bucket, its bucket, the empty run up to 1's, its bucket, the rest.
  EXPECT_EQ(h.bucket_limits, (std::vector<double>{limits[neg - 1], limits[neg], limits[pos - 1],
                                                  limits[pos], DBL_MAX}));
  EXPECT_EQ(h.bucket_counts, (std::vector<double>{0, 1, 0, 2, 0}));
  EXPECT_EQ(h.min, -2.0);
  EXPECT_EQ(h.max, 1.0);
  EXPECT_EQ(h.num, 3.0);
  EXPECT_EQ(h.sum, 0.0);
  EXPECT_EQ(h.sum_squares, 6.0);
}

TEST(HistogramBuckets, CountEveryValueOnceInItsBucket) {
  std::vector<float> values;
  for (int i = 0; i < 5000; ++i) values.push_back(std::sin(0.37f * i) * std::exp(0.002f * i));
  const Histogram h = make_histogram(values);
  double total = 0;
  for (double c : h.bucket_counts) total += c;
  EXPECT_EQ(total, 5000.0);
  EXPECT_EQ(h.num, 5000.0);
  for (std::size_t i = 1; i < h.bucket_limits.size(); ++i) {
    EXPECT_LT(h.bucket_limits[i - 1], h.bucket_limits[i]);
  }
  // The same histogram from counts made elsewhere (as a GPU's reduction would make them).
  std::vector<double> counts(default_bucket_limits().size(), 0.0);
  double sum = 0, sum_squares = 0;
  for (float v : values) {
    counts[default_bucket_index(v)] += 1;
    sum += v;
    sum_squares += static_cast<double>(v) * v;
  }
  const Histogram from_counts = histogram_from_counts(counts, h.min, h.max, sum, sum_squares);
  EXPECT_EQ(from_counts.bucket_limits, h.bucket_limits);
  EXPECT_EQ(from_counts.bucket_counts, h.bucket_counts);
  EXPECT_EQ(from_counts.num, h.num);
  EXPECT_DOUBLE_EQ(from_counts.sum, h.sum);
}

TEST(HistogramBuckets, EmptyAndNonFinite) {
  const Histogram empty = make_histogram(std::vector<float>{});
  EXPECT_EQ(empty.bucket_limits, std::vector<double>{DBL_MAX});
  EXPECT_EQ(empty.bucket_counts, std::vector<double>{0});
  EXPECT_EQ(empty.min, DBL_MAX);
  EXPECT_EQ(empty.max, -DBL_MAX);
  EXPECT_EQ(empty.num, 0);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(code_of([&] { make_histogram({1.0f, nan}); }), ExitCode::kDiverged);
  EXPECT_EQ(code_of([&] { make_histogram({-inf}); }), ExitCode::kDiverged);
  EXPECT_EQ(code_of([] { histogram_from_counts({1.0}, 0, 0, 0, 0); }), ExitCode::kInternal);
}

// --- PNG -------------------------------------------------------------------------------------

std::uint32_t be32(const std::string& s, std::size_t at) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(s[at + i]);
  return v;
}

struct Chunk {
  std::string type, data;
};

// Splits a PNG into its chunks, checking the signature and every chunk's CRC.
std::vector<Chunk> png_chunks(const std::string& png) {
  std::vector<Chunk> chunks;
  EXPECT_EQ(png.substr(0, 8), "\x89PNG\r\n\x1a\n"s);
  for (std::size_t at = 8; at < png.size();) {
    const std::uint32_t length = be32(png, at);
    Chunk c{png.substr(at + 4, 4), png.substr(at + 8, length)};
    const std::string typed = c.type + c.data;
    EXPECT_EQ(be32(png, at + 8 + length), ::crc32(0L, reinterpret_cast<const Bytef*>(typed.data()),
                                                  static_cast<uInt>(typed.size())))
        << c.type;
    chunks.push_back(c);
    at += 12 + length;
  }
  return chunks;
}

std::string inflate(const std::string& compressed, std::size_t expected) {
  std::string out(expected + 1, '\0');
  uLongf size = static_cast<uLongf>(out.size());
  EXPECT_EQ(::uncompress(reinterpret_cast<Bytef*>(out.data()), &size,
                         reinterpret_cast<const Bytef*>(compressed.data()),
                         static_cast<uLong>(compressed.size())),
            Z_OK);
  out.resize(size);
  return out;
}

TEST(Png, GreyImageDecodesBack) {
  const int width = 5, height = 3;
  std::vector<std::uint8_t> pixels(width * height);
  for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<std::uint8_t>(i * 17);
  const std::vector<Chunk> chunks = png_chunks(encode_png(pixels.data(), width, height));
  ASSERT_EQ(chunks.size(), 3u);
  EXPECT_EQ(chunks[0].type, "IHDR");
  EXPECT_EQ(chunks[0].data, "\0\0\0\x05\0\0\0\x03\x08\0\0\0\0"s);  // 8-bit grey, no interlace
  EXPECT_EQ(chunks[1].type, "IDAT");
  EXPECT_EQ(chunks[2].type, "IEND");
  EXPECT_EQ(chunks[2].data, "");
  const std::string rows = inflate(chunks[1].data, (width + 1) * height);
  ASSERT_EQ(rows.size(), static_cast<std::size_t>((width + 1) * height));
  for (int y = 0; y < height; ++y) {
    EXPECT_EQ(rows[y * (width + 1)], '\0') << "filter type 0";
    for (int x = 0; x < width; ++x) {
      EXPECT_EQ(static_cast<std::uint8_t>(rows[y * (width + 1) + 1 + x]), pixels[y * width + x]);
    }
  }
}

TEST(Png, ColourTypesPerChannelCount) {
  const std::vector<std::uint8_t> pixels(2 * 2 * 4, 200);
  const char expected_type[] = {0, 4, 2, 6};
  for (int channels = 1; channels <= 4; ++channels) {
    const std::vector<Chunk> chunks = png_chunks(encode_png(pixels.data(), 2, 2, channels));
    EXPECT_EQ(chunks[0].data[9], expected_type[channels - 1]) << channels;
    EXPECT_EQ(inflate(chunks[1].data, 2 * (1 + 2 * channels)).size(), 2u * (1 + 2 * channels));
  }
}

TEST(Png, RefusesImpossibleSizes) {
  const std::uint8_t pixel = 0;
  EXPECT_EQ(code_of([&] { encode_png(&pixel, 0, 1); }), ExitCode::kInternal);
  EXPECT_EQ(code_of([&] { encode_png(&pixel, 1, -1); }), ExitCode::kInternal);
  EXPECT_EQ(code_of([&] { encode_png(&pixel, 1, 1, 5); }), ExitCode::kInternal);
}

// --- the writer ------------------------------------------------------------------------------

class EventWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("mnist_summary_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  static double fixed_clock() { return 1700000000.25; }
  std::string host_suffix(const std::string& path) const {
    return fs::path(path).filename().string().substr(std::strlen("events.out.tfevents.1700000000"));
  }
  fs::path dir_;
};

TEST_F(EventWriterTest, NamesTheFileAndWritesTheVersionFirst) {
  EventWriter writer(dir_.string(), fixed_clock);
  const std::string name = fs::path(writer.path()).filename().string();
  EXPECT_EQ(name.rfind("events.out.tfevents.1700000000.", 0), 0u) << name;
  EXPECT_EQ(fs::path(writer.path()).parent_path(), dir_);
  EXPECT_EQ(read_all(writer.path()), tfrecord_frame(encode_version_event(fixed_clock())));
  EXPECT_EQ(fs::status(writer.path()).permissions() & fs::perms::owner_write,
            fs::perms::owner_write);
}

TEST_F(EventWriterTest, EachWriteReachesTheFileAtOnce) {
  EventWriter writer(dir_.string(), fixed_clock);
  std::string expected = tfrecord_frame(encode_version_event(fixed_clock()));
  writer.add_scalar("loss", 7, 0.25f);
  expected += tfrecord_frame(
      encode_summary_event(fixed_clock(), 7, SummaryBuilder().scalar("loss", 0.25f)));
  EXPECT_EQ(read_all(writer.path()), expected) << "no buffering: readable while the writer lives";
  writer.add_histogram("w", 7, std::vector<float>{1.0f, 2.0f});
  expected += tfrecord_frame(encode_summary_event(
      fixed_clock(), 7, SummaryBuilder().histogram("w", make_histogram({1.0f, 2.0f}))));
  EXPECT_EQ(read_all(writer.path()), expected);
  const std::uint8_t pixels[4] = {0, 64, 128, 255};
  writer.add_gray_image("img", 8, pixels, 2, 2);
  expected += tfrecord_frame(encode_summary_event(
      fixed_clock(), 8, SummaryBuilder().image("img", encode_png(pixels, 2, 2), 2, 2, 1)));
  writer.add_text("flags", 0, "--seed 1");
  expected += tfrecord_frame(
      encode_summary_event(fixed_clock(), 0, SummaryBuilder().text("flags", "--seed 1")));
  writer.write(9, SummaryBuilder());  // nothing to write: no event
  EXPECT_EQ(read_all(writer.path()), expected);
}

TEST_F(EventWriterTest, ANewFilePerWriterNeverTouchingTheOthers) {
  EventWriter first(dir_.string(), fixed_clock);
  first.add_scalar("a", 1, 1.0f);
  const std::string first_content = read_all(first.path());
  EventWriter second(dir_.string(), fixed_clock);  // the same second: a suffix
  EventWriter third(dir_.string(), fixed_clock);
  EXPECT_EQ(host_suffix(second.path()), host_suffix(first.path()) + ".001");
  EXPECT_EQ(host_suffix(third.path()), host_suffix(first.path()) + ".002");
  second.add_scalar("b", 2, 2.0f);
  EXPECT_EQ(read_all(first.path()), first_content);
  // Names sort in creation order, as TensorBoard reads a folder's files.
  EXPECT_LT(first.path(), second.path());
  EXPECT_LT(second.path(), third.path());
}

TEST_F(EventWriterTest, NeverWritesThroughALink) {
  const std::string victim = (dir_ / "victim").string();
  std::ofstream(victim) << "keep";
  EventWriter probe(dir_.string(), fixed_clock);  // learn the name, then plant a link there
  const std::string name = probe.path();
  fs::remove(name);
  fs::create_symlink(victim, name);
  EventWriter writer(dir_.string(), fixed_clock);
  EXPECT_NE(writer.path(), name);
  writer.add_scalar("a", 1, 1.0f);
  EXPECT_EQ(read_all(victim), "keep");
}

TEST_F(EventWriterTest, MissingFolderIsAnOutputFailure) {
  try {
    EventWriter writer((dir_ / "missing").string(), fixed_clock);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kOutputFailed);
    EXPECT_NE(std::string(e.what()).find("cannot create"), std::string::npos) << e.what();
  }
}

TEST_F(EventWriterTest, AFailedWriteIsReportedAndEveryLaterOneToo) {
  EventWriter writer(dir_.string(), fixed_clock);
  // A file-size limit just past what is written makes write(2) fail (EFBIG), as a full disk would.
  struct rlimit old {};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  auto old_handler = ::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = old;
  small.rlim_cur = static_cast<rlim_t>(fs::file_size(writer.path()) + 100);
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  std::vector<float> values;
  for (int i = 0; i < 1000; ++i) values.push_back(static_cast<float>(i));
  std::string first_error, second_error;
  try {
    writer.add_histogram("big", 1, values);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kOutputFailed);
    first_error = e.what();
  }
  ::setrlimit(RLIMIT_FSIZE, &old);
  ::signal(SIGXFSZ, old_handler);
  EXPECT_EQ(first_error.rfind(writer.path() + ": write failed: ", 0), 0u) << first_error;
  try {
    writer.add_scalar("after", 2, 1.0f);  // the file now ends in a partial record: refused
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kOutputFailed);
    second_error = e.what();
  }
  EXPECT_EQ(second_error, first_error);
}

TEST_F(EventWriterTest, NonFiniteHistogramNamesItsTag) {
  EventWriter writer(dir_.string(), fixed_clock);
  try {
    writer.add_histogram("layer1/weights", 3, std::vector<float>{std::nanf("")});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kDiverged);
    EXPECT_EQ(std::string(e.what()).rfind("layer1/weights: ", 0), 0u) << e.what();
  }
}

TEST_F(EventWriterTest, MovesKeepTheFile) {
  EventWriter writer(dir_.string(), fixed_clock);
  const std::string path = writer.path();
  EventWriter moved(std::move(writer));
  moved.add_scalar("a", 1, 1.0f);
  EXPECT_EQ(moved.path(), path);
  EXPECT_GT(fs::file_size(path), 40u);
}

}  // namespace
}  // namespace mnist
