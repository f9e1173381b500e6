#include "train/checkpoint.h"

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "data/fileio.h"
#include "error.h"

namespace mnist {

namespace fs = std::filesystem;

namespace {

const char* kCheckpointName = "model.ckpt";
const char kCheckpointMagic[8] = {'M', 'N', 'I', 'S', 'T', 'C', 'K', '1'};

nlohmann::json checkpoint_identity(const RunConfig& run) {
  return {{"model", model_name(run.train.model)},
          {"hidden_units", run.train.hidden_units},
          {"batch_size", run.train.batch_size},
          {"seed", run.train.seed},
          {"dataset", run.dataset},
          {"fake_data", run.fake_data}};
}

}  // namespace

void save_checkpoint(const RunConfig& run, Backend& backend, std::int64_t next_iteration) {
  const TrainState s = backend.state();
  nlohmann::json header = checkpoint_identity(run);
  header["iteration"] = next_iteration;
  header["step"] = s.step;
  header["parameters"] = s.params.size();
  const std::string text = header.dump();
  std::vector<std::uint8_t> blob(kCheckpointMagic, kCheckpointMagic + 8);
  const auto length = static_cast<std::uint32_t>(text.size());
  blob.insert(blob.end(), reinterpret_cast<const std::uint8_t*>(&length),
              reinterpret_cast<const std::uint8_t*>(&length) + 4);
  blob.insert(blob.end(), text.begin(), text.end());
  for (const auto* v : {&s.params, &s.adam_m, &s.adam_v}) {
    const auto* bytes = reinterpret_cast<const std::uint8_t*>(v->data());
    blob.insert(blob.end(), bytes, bytes + v->size() * sizeof(float));
  }
  std::error_code ec;
  fs::create_directories(run.checkpoint_dir, ec);
  write_file_atomically((fs::path(run.checkpoint_dir) / kCheckpointName).string(), blob);
}

std::int64_t load_checkpoint_if_present(const RunConfig& run, Backend& backend, std::ostream& out) {
  if (run.checkpoint_dir.empty()) return 0;
  const std::string path = (fs::path(run.checkpoint_dir) / kCheckpointName).string();
  if (!fs::exists(path)) return 0;
  const auto blob = read_file(path);
  auto bad = [&](const std::string& why) {
    return Error(ExitCode::kDataUnavailable, path + ": invalid checkpoint: " + why);
  };
  if (blob.size() < 12 || std::memcmp(blob.data(), kCheckpointMagic, 8) != 0)
    throw bad("bad magic");
  std::uint32_t length;
  std::memcpy(&length, blob.data() + 8, 4);
  if (blob.size() < 12 + std::size_t(length)) throw bad("truncated header");
  nlohmann::json header =
      nlohmann::json::parse(blob.begin() + 12, blob.begin() + 12 + length, nullptr, false);
  if (header.is_discarded()) throw bad("header is not JSON");
  const nlohmann::json identity = checkpoint_identity(run);
  for (const std::string key :
       {"model", "hidden_units", "batch_size", "seed", "dataset", "fake_data"}) {
    const std::string saved = header.contains(key) ? header[key].dump() : "nothing";
    if (saved != identity[key].dump()) {
      throw Error(ExitCode::kBadArguments, path + ": checkpoint was made with " + key + "=" +
                                               saved + ", this run has " + identity[key].dump() +
                                               " (use another --checkpoint_dir)");
    }
  }
  TrainState s;
  const std::size_t n = header.at("parameters").get<std::size_t>();
  if (blob.size() != 12 + std::size_t(length) + 3 * n * sizeof(float))
    throw bad("size does not match its header");
  std::vector<float> all(n * 3);
  std::memcpy(all.data(), blob.data() + 12 + length, all.size() * sizeof(float));
  s.params.assign(all.begin(), all.begin() + n);
  s.adam_m.assign(all.begin() + n, all.begin() + 2 * n);
  s.adam_v.assign(all.begin() + 2 * n, all.end());
  s.step = header.at("step").get<std::int64_t>();
  if (s.params.size() != backend.state().params.size())
    throw bad("parameter count differs from the model");
  backend.set_state(s);
  const auto iteration = header.at("iteration").get<std::int64_t>();
  out << "Resuming from " << path << " at step " << iteration << std::endl;
  return iteration;
}

}  // namespace mnist
