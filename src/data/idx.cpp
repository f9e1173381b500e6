#include "data/idx.h"

#include "error.h"

namespace mnist {
namespace {

std::uint32_t read_be32(const std::vector<std::uint8_t>& b, std::size_t at) {
  return (std::uint32_t{b[at]} << 24) | (std::uint32_t{b[at + 1]} << 16) |
         (std::uint32_t{b[at + 2]} << 8) | std::uint32_t{b[at + 3]};
}

void put_be32(std::vector<std::uint8_t>& b, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<std::uint8_t>(v >> shift));
}

// Validates the header and exact size; returns the dims.
std::vector<std::uint32_t> parse_header(const std::vector<std::uint8_t>& bytes,
                                        const std::string& name, std::uint32_t magic,
                                        const char* what) {
  auto fail = [&](const std::string& why) {
    return Error(ExitCode::kDataInvalid, name + ": invalid idx " + what + " file: " + why);
  };
  if (bytes.size() < 4)
    throw fail("file is " + std::to_string(bytes.size()) + " bytes, too short for a header");
  const std::uint32_t got = read_be32(bytes, 0);
  const std::uint32_t rank = magic & 0xff;
  if (got != magic) {
    throw fail("magic number " + std::to_string(got) + ", expected " + std::to_string(magic));
  }
  const std::size_t header = 4 + 4 * rank;
  if (bytes.size() < header)
    throw fail("truncated header (" + std::to_string(bytes.size()) + " bytes)");
  std::vector<std::uint32_t> dims;
  std::uint64_t payload = 1;
  for (std::uint32_t i = 0; i < rank; ++i) {
    dims.push_back(read_be32(bytes, 4 + 4 * i));
    payload *= dims.back();
  }
  if (payload > (std::uint64_t{1} << 32)) throw fail("dimensions too large");
  const std::uint64_t expected = header + payload;
  if (bytes.size() != expected) {
    throw fail("size is " + std::to_string(bytes.size()) + " bytes, dimensions say " +
               std::to_string(expected) +
               (bytes.size() < expected ? " (truncated)" : " (trailing bytes)"));
  }
  return dims;
}

}  // namespace

IdxImages parse_idx_images(const std::vector<std::uint8_t>& bytes, const std::string& name) {
  const auto dims = parse_header(bytes, name, kIdxImagesMagic, "images");
  if (dims[1] != 28 || dims[2] != 28) {
    throw Error(ExitCode::kDataInvalid, name + ": invalid idx images file: images are " +
                                            std::to_string(dims[1]) + "x" +
                                            std::to_string(dims[2]) + ", expected 28x28");
  }
  if (dims[0] == 0)
    throw Error(ExitCode::kDataInvalid, name + ": invalid idx images file: no images");
  IdxImages out;
  out.count = static_cast<int>(dims[0]);
  out.rows = static_cast<int>(dims[1]);
  out.cols = static_cast<int>(dims[2]);
  out.pixels.assign(bytes.begin() + 16, bytes.end());
  return out;
}

std::vector<std::uint8_t> parse_idx_labels(const std::vector<std::uint8_t>& bytes,
                                           const std::string& name) {
  const auto dims = parse_header(bytes, name, kIdxLabelsMagic, "labels");
  if (dims[0] == 0)
    throw Error(ExitCode::kDataInvalid, name + ": invalid idx labels file: no labels");
  std::vector<std::uint8_t> labels(bytes.begin() + 8, bytes.end());
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] >= kClasses) {
      throw Error(ExitCode::kDataInvalid, name + ": invalid idx labels file: label " +
                                              std::to_string(labels[i]) + " at index " +
                                              std::to_string(i) + " is outside 0..9");
    }
  }
  return labels;
}

void check_counts_agree(const IdxImages& images, const std::vector<std::uint8_t>& labels,
                        const std::string& images_name, const std::string& labels_name) {
  if (static_cast<std::size_t>(images.count) != labels.size()) {
    throw Error(ExitCode::kDataInvalid, images_name + ": has " + std::to_string(images.count) +
                                            " images but " + labels_name + " has " +
                                            std::to_string(labels.size()) + " labels");
  }
}

std::vector<std::uint8_t> encode_idx_images(const IdxImages& images) {
  std::vector<std::uint8_t> b;
  put_be32(b, kIdxImagesMagic);
  put_be32(b, static_cast<std::uint32_t>(images.count));
  put_be32(b, static_cast<std::uint32_t>(images.rows));
  put_be32(b, static_cast<std::uint32_t>(images.cols));
  b.insert(b.end(), images.pixels.begin(), images.pixels.end());
  return b;
}

std::vector<std::uint8_t> encode_idx_labels(const std::vector<std::uint8_t>& labels) {
  std::vector<std::uint8_t> b;
  put_be32(b, kIdxLabelsMagic);
  put_be32(b, static_cast<std::uint32_t>(labels.size()));
  b.insert(b.end(), labels.begin(), labels.end());
  return b;
}

}  // namespace mnist
