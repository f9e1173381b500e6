#include "train/checkpoint.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>

#include "data/fileio.h"
#include "data/sha256.h"
#include "error.h"
#include "train/model.h"
#include "watchdog.h"

namespace mnist {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr char kMagic[8] = {'M', 'N', 'I', 'S', 'T', 'C', 'K', '2'};
constexpr int kFormat = 2;
constexpr std::size_t kPrefixBytes = 8 + 4;       // magic, header length
constexpr std::size_t kDigestBytes = 32;          // SHA-256 trailer
constexpr std::size_t kMaxHeaderBytes = 1 << 16;  // a header is ~250 bytes
constexpr const char* kNewest = "model.ckpt";
constexpr const char* kPrevious = "model.ckpt.1";

// Limits every header field is checked against (the command line's own ranges).
constexpr std::int64_t kMaxIteration = std::numeric_limits<std::int32_t>::max();
constexpr int kMaxHiddenUnits = 65536;
constexpr int kMaxBatch = 1 << 20;
constexpr std::size_t kMaxNameLength = 64;

std::size_t file_bytes(std::size_t header_bytes, std::size_t parameters) {
  return kPrefixBytes + header_bytes + 3 * parameters * sizeof(float) + kDigestBytes;
}

std::string hex(const std::uint8_t* bytes, std::size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (std::size_t i = 0; i < n; ++i) {
    s += digits[bytes[i] >> 4];
    s += digits[bytes[i] & 15];
  }
  return s;
}

// Reads a header, throwing `bad` for a missing field, a wrong type or a value out of range.
class HeaderReader {
 public:
  HeaderReader(const json& header, const std::string& name) : header_(header), name_(name) {}

  Error bad(const std::string& why) const {
    return Error(ExitCode::kDataInvalid, name_ + ": invalid checkpoint: " + why);
  }
  const json& field(const char* key) const {
    const auto it = header_.find(key);
    if (it == header_.end()) throw bad(std::string("no \"") + key + "\" field");
    return *it;
  }
  std::int64_t integer(const char* key, std::int64_t lo, std::int64_t hi) const {
    const json& v = field(key);
    if (!v.is_number_integer()) throw bad(std::string("\"") + key + "\" is not an integer");
    if (v.is_number_unsigned() && v.get<std::uint64_t>() > std::uint64_t(hi))
      throw bad(std::string("\"") + key + "\" is out of range");
    const auto x = v.get<std::int64_t>();
    if (x < lo || x > hi) {
      throw bad(std::string("\"") + key + "\" is " + std::to_string(x) + ", outside " +
                std::to_string(lo) + ".." + std::to_string(hi));
    }
    return x;
  }
  std::uint64_t unsigned_integer(const char* key) const {
    const json& v = field(key);
    if (!v.is_number_unsigned())
      throw bad(std::string("\"") + key + "\" is not an unsigned integer");
    return v.get<std::uint64_t>();
  }
  std::string text(const char* key) const {
    const json& v = field(key);
    if (!v.is_string()) throw bad(std::string("\"") + key + "\" is not a string");
    std::string s = v.get<std::string>();
    if (s.size() > kMaxNameLength) throw bad(std::string("\"") + key + "\" is too long");
    return s;
  }
  bool boolean(const char* key) const {
    const json& v = field(key);
    if (!v.is_boolean()) throw bad(std::string("\"") + key + "\" is not a boolean");
    return v.get<bool>();
  }
  float finite(const char* key) const {
    const json& v = field(key);
    if (!v.is_number()) throw bad(std::string("\"") + key + "\" is not a number");
    const double x = v.get<double>();
    if (!std::isfinite(x) || std::fabs(x) > std::numeric_limits<float>::max())
      throw bad(std::string("\"") + key + "\" is not a finite float");
    return static_cast<float>(x);
  }

 private:
  const json& header_;
  std::string name_;
};

json identity_of(const Checkpoint& c) {
  return {{"model", c.model}, {"hidden_units", c.hidden_units}, {"batch_size", c.batch_size},
          {"seed", c.seed},   {"dataset", c.dataset},           {"fake_data", c.fake_data}};
}

std::string path_in(const RunConfig& run, const char* file) {
  return (fs::path(run.checkpoint_dir) / file).string();
}

// The largest file any valid checkpoint can be (another run's too: that one is reported as
// incompatible, not as damaged).
std::size_t max_file_bytes() {
  return file_bytes(kMaxHeaderBytes, make_layout(ModelKind::kMlp, kMaxHiddenUnits).total);
}

// Temporaries of writes that never finished (a process killed mid-write): the run lock is held,
// so no other writer is using them.
void remove_stale_temporaries(const std::string& dir) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(std::string(kNewest) + ".tmp.", 0) == 0) remove_entry(entry.path().string());
  }
}

// The checkpoint under `path`, or the reason it cannot be used (kDataInvalid).
Checkpoint read_checkpoint(const std::string& path) {
  return decode_checkpoint(read_file(path, max_file_bytes(), ExitCode::kDataInvalid), path);
}

}  // namespace

Checkpoint make_checkpoint(const RunConfig& run, const TrainState& state, std::int64_t iteration,
                           float last_loss) {
  Checkpoint c;
  c.model = model_name(run.train.model);
  c.hidden_units = run.train.hidden_units;
  c.batch_size = run.train.batch_size;
  c.seed = run.train.seed;
  c.dataset = run.dataset;
  c.fake_data = run.fake_data;
  c.iteration = iteration;
  c.last_loss = last_loss;
  c.state = state;
  return c;
}

std::vector<std::uint8_t> encode_checkpoint(const Checkpoint& c) {
  json header = identity_of(c);
  header["format"] = kFormat;
  header["iteration"] = c.iteration;
  header["step"] = c.state.step;
  header["parameters"] = c.state.params.size();
  header["last_loss"] = c.last_loss;
  const std::string text = header.dump();
  const std::size_t n = c.state.params.size();
  std::vector<std::uint8_t> blob(kMagic, kMagic + sizeof kMagic);
  blob.reserve(file_bytes(text.size(), n));
  const auto length = static_cast<std::uint32_t>(text.size());
  for (int i = 0; i < 4; ++i) blob.push_back(static_cast<std::uint8_t>(length >> (8 * i)));
  blob.insert(blob.end(), text.begin(), text.end());
  for (const auto* v : {&c.state.params, &c.state.adam_m, &c.state.adam_v}) {
    const auto* bytes = reinterpret_cast<const std::uint8_t*>(v->data());
    blob.insert(blob.end(), bytes, bytes + v->size() * sizeof(float));
  }
  const std::string digest = sha256_hex(blob);
  auto nibble = [](char h) { return h <= '9' ? h - '0' : h - 'a' + 10; };
  for (std::size_t i = 0; i < kDigestBytes; ++i)
    blob.push_back(
        static_cast<std::uint8_t>(nibble(digest[2 * i]) * 16 + nibble(digest[2 * i + 1])));
  return blob;
}

Checkpoint decode_checkpoint(const std::vector<std::uint8_t>& bytes, const std::string& name) {
  const HeaderReader fail_only(json::object(), name);  // for errors before the header is read
  if (bytes.size() < kPrefixBytes + kDigestBytes || std::memcmp(bytes.data(), kMagic, 8) != 0)
    throw fail_only.bad("not a format-2 checkpoint (bad magic)");
  const std::vector<std::uint8_t> body(bytes.begin(), bytes.end() - kDigestBytes);
  if (sha256_hex(body) != hex(bytes.data() + body.size(), kDigestBytes))
    throw fail_only.bad("checksum mismatch (the file is damaged)");
  std::uint32_t length = 0;
  for (int i = 0; i < 4; ++i) length |= std::uint32_t(bytes[8 + i]) << (8 * i);
  if (length > kMaxHeaderBytes || kPrefixBytes + length > body.size())
    throw fail_only.bad("header length out of range");
  const json header = json::parse(body.begin() + kPrefixBytes, body.begin() + kPrefixBytes + length,
                                  nullptr, false);
  if (header.is_discarded() || !header.is_object()) throw fail_only.bad("header is not JSON");
  const HeaderReader h(header, name);

  // Intact, with a format above ours: a newer mnist-train wrote it; nothing is damaged.
  const auto format = header.find("format");
  if (format != header.end() && format->is_number_unsigned() &&
      format->get<std::uint64_t>() > std::uint64_t(kFormat)) {
    throw Error(ExitCode::kBadArguments,
                name + ": written by a newer version of mnist-train (format " + format->dump() +
                    ", this binary reads " + std::to_string(kFormat) +
                    "): use that version or another --checkpoint_dir");
  }
  if (h.integer("format", kFormat, kFormat) != kFormat) throw h.bad("unknown format");
  Checkpoint c;
  c.model = h.text("model");
  const auto kind = value_in(kModelNames, c.model);
  if (!kind) throw h.bad("unknown model " + json(c.model).dump());  // escaped: untrusted text
  c.hidden_units = static_cast<int>(h.integer("hidden_units", 1, kMaxHiddenUnits));
  c.batch_size = static_cast<int>(h.integer("batch_size", 1, kMaxBatch));
  c.seed = h.unsigned_integer("seed");
  c.dataset = h.text("dataset");
  c.fake_data = h.boolean("fake_data");
  c.iteration = h.integer("iteration", 0, kMaxIteration);
  // Each loop iteration trains at most one step.
  const std::int64_t step = h.integer("step", 0, c.iteration);
  c.last_loss = h.finite("last_loss");
  const std::size_t n = make_layout(*kind, c.hidden_units).total;
  if (h.integer("parameters", 0, std::numeric_limits<std::int64_t>::max()) != std::int64_t(n))
    throw h.bad("parameter count does not match its model");
  if (bytes.size() != file_bytes(length, n)) throw h.bad("size does not match its header");

  c.state.step = step;
  std::vector<float>* arrays[] = {&c.state.params, &c.state.adam_m, &c.state.adam_v};
  for (std::size_t a = 0; a < 3; ++a) {
    std::vector<float>* v = arrays[a];
    const std::size_t offset = kPrefixBytes + length + a * n * sizeof(float);
    v->resize(n);
    std::memcpy(v->data(), bytes.data() + offset, n * sizeof(float));
    for (float x : *v)
      if (!std::isfinite(x)) throw h.bad("a parameter or Adam moment is not finite");
  }
  for (float x : c.state.adam_v)
    if (x < 0.0f) throw h.bad("a second moment is negative");
  return c;
}

void check_compatible(const Checkpoint& c, const RunConfig& run, std::size_t parameters,
                      const std::string& name) {
  const json saved = identity_of(c);
  const json wanted = identity_of(make_checkpoint(run, {}, 0, 0.0f));
  for (const char* key : {"model", "hidden_units", "batch_size", "seed", "dataset", "fake_data"}) {
    if (saved[key] != wanted[key]) {
      throw Error(ExitCode::kBadArguments,
                  name + ": checkpoint was made with " + key + "=" + saved[key].dump() +
                      ", this run has " + wanted[key].dump() + " (use another --checkpoint_dir)");
    }
  }
  if (c.state.params.size() != parameters)
    throw Error(ExitCode::kBadArguments, name + ": parameter count differs from the model");
}

ResumePoint load_checkpoint_if_present(const RunConfig& run, Backend& backend, std::ostream& log) {
  if (run.checkpoint_dir.empty()) return {};
  heartbeat("checkpoint");
  std::string faults;
  for (const char* file : {kNewest, kPrevious}) {
    const std::string path = path_in(run, file);
    if (file_kind(path) == FileKind::kMissing) continue;
    Checkpoint c;
    try {
      c = read_checkpoint(path);
    } catch (const Error& e) {
      if (e.code() != ExitCode::kDataInvalid) throw;  // a newer version's: never skipped over
      log << "warning: " << e.what() << "; trying an older checkpoint" << std::endl;
      faults += (faults.empty() ? "" : "; ") + std::string(e.what());
      continue;
    }
    check_compatible(c, run, backend.state().params.size(), path);
    backend.set_state(c.state);
    log << "Resuming from " << path << " at step " << c.iteration << std::endl;
    return {c.iteration, c.last_loss};
  }
  if (!faults.empty()) {
    throw Error(ExitCode::kDataInvalid, "no valid checkpoint in " + run.checkpoint_dir + " (" +
                                            faults +
                                            "); remove them or use another --checkpoint_dir");
  }
  return {};
}

void save_checkpoint(const RunConfig& run, Backend& backend, std::int64_t next_iteration,
                     float last_loss) {
  heartbeat("checkpoint");
  std::error_code ec;
  fs::create_directories(run.checkpoint_dir, ec);  // a failure shows in the write below
  remove_stale_temporaries(run.checkpoint_dir);
  const std::string newest = path_in(run, kNewest), previous = path_in(run, kPrevious);
  // The iteration of each valid file (-1: missing or unusable).
  auto valid_iteration = [](const std::string& path) -> std::int64_t {
    if (file_kind(path) == FileKind::kMissing) return -1;
    try {
      return read_checkpoint(path).iteration;
    } catch (const Error& e) {
      if (e.code() != ExitCode::kDataInvalid) throw;  // a newer version's: never removed
      return -1;
    }
  };
  const std::int64_t newest_at = valid_iteration(newest), previous_at = valid_iteration(previous);
  if (std::max(newest_at, previous_at) >= next_iteration) return;  // never move backwards
  // Whatever is not a valid checkpoint under either name (damage, a folder, a planted link) goes;
  // a valid newest file becomes the previous one.
  if (newest_at < 0) remove_entry(newest);
  if (newest_at >= 0 && file_kind(previous) == FileKind::kOther) remove_entry(previous);
  const bool keep_newest = newest_at >= 0;
  const auto bytes =
      encode_checkpoint(make_checkpoint(run, backend.state(), next_iteration, last_loss));
  if (keep_newest && std::rename(newest.c_str(), previous.c_str()) != 0) {
    throw Error(ExitCode::kOutputFailed,
                newest + ": cannot keep as " + previous + ": " + std::strerror(errno));
  }
  write_file_atomically(newest, bytes, ExitCode::kOutputFailed);
}

}  // namespace mnist
