#include "trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "error.h"
#include "fileio.h"

namespace mnist {

std::atomic<bool> g_stop_requested{false};

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::string format_accuracy(double accuracy) {
  const float value = static_cast<float>(accuracy);
  char buf[32];
  for (int digits = 1; digits <= 9; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, double(value));
    if (std::strtof(buf, nullptr) == value) break;
  }
  std::string s = buf;
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

namespace {

// Summaries as JSON lines, one file per split, like the sample's train/ and test/ writers.
class SummaryWriter {
 public:
  SummaryWriter(const std::string& log_dir, const char* split) {
    if (log_dir.empty()) return;
    const fs::path dir = fs::path(log_dir) / split;
    std::error_code ec;
    fs::create_directories(dir, ec);
    file_.open(dir / "scalars.jsonl", std::ios::trunc);
    if (!file_) {
      throw Error(ExitCode::kBadArguments,
                  (dir / "scalars.jsonl").string() + ": cannot write summaries (--log_dir)");
    }
  }
  void write(const nlohmann::json& record) {
    if (file_) file_ << record.dump() << '\n' << std::flush;
  }

 private:
  std::ofstream file_;
};

void check_finite(float loss, std::int64_t iteration) {
  if (!std::isfinite(loss)) {
    throw Error(ExitCode::kDiverged,
                "training diverged: loss is " + std::string(std::isnan(loss) ? "NaN" : "Inf") +
                    " at step " + std::to_string(iteration) + " (try a smaller --learning_rate)");
  }
}

const char* kCheckpointName = "model.ckpt";
const char kCheckpointMagic[8] = {'M', 'N', 'I', 'S', 'T', 'C', 'K', '1'};

nlohmann::json checkpoint_identity(const Options& o) {
  return {{"model", model_name(o.model)}, {"hidden_units", o.hidden_units},
          {"batch_size", o.batch_size},   {"seed", o.seed},
          {"dataset", o.dataset},         {"fake_data", o.fake_data}};
}

}  // namespace

void save_checkpoint(const Options& options, Backend& backend, std::int64_t next_iteration) {
  const TrainState s = backend.state();
  nlohmann::json header = checkpoint_identity(options);
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
  fs::create_directories(options.checkpoint_dir, ec);
  write_file_atomically((fs::path(options.checkpoint_dir) / kCheckpointName).string(), blob);
}

std::int64_t load_checkpoint_if_present(const Options& options, Backend& backend,
                                        std::ostream& out) {
  if (options.checkpoint_dir.empty()) return 0;
  const std::string path = (fs::path(options.checkpoint_dir) / kCheckpointName).string();
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
  const nlohmann::json identity = checkpoint_identity(options);
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

TrainResult run_training_loop(const Options& options, Backend& backend, const MnistData& data,
                              std::int64_t first_iteration, std::ostream& out) {
  SummaryWriter train_log(options.log_dir, "train");
  SummaryWriter test_log(options.log_dir, "test");
  const int n = data.train.count;
  const int batch = options.batch_size;
  std::int64_t epochs_provided = -1;  // highest epoch whose order the backend has
  auto provide_orders_for = [&](std::int64_t step) {
    const std::int64_t first_epoch = stream_position(step * batch, n).epoch;
    const std::int64_t last_epoch = stream_position((step + 1) * batch - 1, n).epoch;
    for (std::int64_t e = std::max(epochs_provided + 1, first_epoch); e <= last_epoch; ++e) {
      backend.set_epoch_order(e, epoch_order(options.seed, e, n));
    }
    epochs_provided = last_epoch;
  };

  double accuracy = 0.0;
  bool evaluated_last = false;
  const auto start = Clock::now();
  for (std::int64_t i = first_iteration; i < options.max_steps; ++i) {
    if (g_stop_requested.load()) {
      if (options.checkpoint_dir.empty()) {
        throw Error(ExitCode::kTerminated, "stopped by SIGTERM at step " + std::to_string(i) +
                                               " (no --checkpoint_dir, nothing saved)");
      }
      save_checkpoint(options, backend, i);
      throw Error(ExitCode::kTerminated, "stopped by SIGTERM at step " + std::to_string(i) +
                                             "; checkpoint saved in " + options.checkpoint_dir);
    }
    if (i % options.eval_every == 0) {
      const std::int64_t steps = backend.steps_taken();
      if (steps > 0) {
        const float loss = backend.last_loss();
        check_finite(loss, i);
        train_log.write({{"step", i}, {"cross_entropy", loss}});
      }
      accuracy = double(backend.evaluate_test()) / data.test.count;
      out << "Accuracy at step " << i << ": " << format_accuracy(accuracy) << std::endl;
      test_log.write({{"step", i}, {"accuracy", accuracy}});
      evaluated_last = true;
      continue;
    }
    provide_orders_for(backend.steps_taken());
    if (i % 100 == 99) {
      // The sample traced this step's ops; we time it on its own and record it.
      backend.synchronize();
      const auto t0 = Clock::now();
      backend.train_step();
      const float loss = backend.last_loss();
      const double micros = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
      train_log.write(
          {{"step", i}, {"cross_entropy", loss}, {"run_metadata", {{"step_wall_us", micros}}}});
      out << "Adding run metadata for " << i << std::endl;
    } else {
      backend.train_step();
    }
    evaluated_last = false;
  }
  TrainResult result;
  result.train_steps = backend.steps_taken();
  if (result.train_steps > 0) check_finite(backend.last_loss(), options.max_steps);
  if (!evaluated_last) accuracy = double(backend.evaluate_test()) / data.test.count;
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  result.final_accuracy = accuracy;
  if (!options.checkpoint_dir.empty()) save_checkpoint(options, backend, options.max_steps);
  return result;
}

}  // namespace mnist
