#include "data/gzip.h"

#include <zlib.h>

#include <limits>

#include "error.h"

namespace mnist {
namespace {

constexpr int kGzipWindowBits = 15 + 16;  // 15-bit window, gzip header and trailer only

// The gzip magic (1f 8b) and the only method it defines (8, deflate).
bool starts_gzip_member(const Bytef* p, uInt n) {
  return n >= 3 && p[0] == 0x1f && p[1] == 0x8b && p[2] == 8;
}

class InflateStream {  // RAII around z_stream
 public:
  InflateStream() {
    if (inflateInit2(&z_, kGzipWindowBits) != Z_OK) throw std::runtime_error("zlib inflateInit2");
  }
  ~InflateStream() { inflateEnd(&z_); }
  InflateStream(const InflateStream&) = delete;
  InflateStream& operator=(const InflateStream&) = delete;
  z_stream* get() { return &z_; }

 private:
  z_stream z_{};
};

}  // namespace

std::vector<std::uint8_t> gunzip(const std::vector<std::uint8_t>& gz, const std::string& name,
                                 std::size_t max_output) {
  auto fail = [&](const std::string& why) {
    return Error(ExitCode::kDataInvalid, name + ": not a valid gzip file: " + why);
  };
  if (gz.empty()) throw fail("empty file");
  if (gz.size() > std::numeric_limits<uInt>::max()) throw fail("larger than zlib reads at once");
  InflateStream stream;
  z_stream* z = stream.get();
  z->next_in = const_cast<Bytef*>(gz.data());
  z->avail_in = static_cast<uInt>(gz.size());

  std::vector<std::uint8_t> out;
  std::uint8_t chunk[1 << 16];
  for (;;) {  // one gzip member per pass: gzip(1) and RFC 1952 allow several, concatenated
    int rc = Z_OK;
    while (rc != Z_STREAM_END) {
      z->next_out = chunk;
      z->avail_out = sizeof chunk;
      rc = inflate(z, Z_NO_FLUSH);
      if (rc == Z_NEED_DICT || rc == Z_DATA_ERROR || rc == Z_MEM_ERROR) {
        throw fail(z->msg ? z->msg : "corrupt deflate data");
      }
      const std::size_t produced = sizeof chunk - z->avail_out;
      if (produced > max_output - out.size()) throw fail("inflates to more than the size limit");
      out.insert(out.end(), chunk, chunk + produced);
      if (rc == Z_BUF_ERROR || (rc == Z_OK && produced == 0 && z->avail_in == 0)) {
        throw fail("truncated (stream ends before the gzip trailer)");
      }
    }
    if (z->avail_in == 0) return out;
    // Only another member may follow; anything else is trailing garbage, refused.
    if (!starts_gzip_member(z->next_in, z->avail_in)) {
      throw fail(std::to_string(z->avail_in) + " trailing bytes after the stream");
    }
    if (inflateReset(z) != Z_OK) throw fail("zlib could not start the next member");
  }
}

std::vector<std::uint8_t> gzip(const std::vector<std::uint8_t>& raw) {
  z_stream z{};
  if (deflateInit2(&z, Z_BEST_SPEED, Z_DEFLATED, kGzipWindowBits, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    throw std::runtime_error("zlib deflateInit2");
  }
  std::vector<std::uint8_t> out(deflateBound(&z, raw.size()) + 32);
  z.next_in = const_cast<Bytef*>(raw.data());
  z.avail_in = static_cast<uInt>(raw.size());
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  if (rc != Z_STREAM_END) throw std::runtime_error("zlib deflate failed");
  return out;
}

}  // namespace mnist
