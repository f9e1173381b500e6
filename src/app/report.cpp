#include "app/report.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <thread>

#include "app/metrics.h"
#include "data/fileio.h"
#include "progress.h"

// The project version (CMakeLists.txt's project(VERSION)), defined by the build.
#ifndef MNIST_VERSION
#define MNIST_VERSION "unknown"
#endif

namespace mnist {
namespace {

using json = nlohmann::ordered_json;
using SystemClock = std::chrono::system_clock;

// Text from outside (paths, messages, argv) may be any bytes: invalid UTF-8 becomes U+FFFD
// instead of an exception from the encoder.
std::string dump(const json& doc) {
  return doc.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

// "2026-11-29T19:35:07.123Z"
std::string iso8601_utc(SystemClock::time_point t) {
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char date[32];
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &utc);
  char text[48];
  std::snprintf(text, sizeof text, "%s.%03dZ", date, static_cast<int>(ms % 1000));
  return text;
}

// A float flag as it was written (0.001), not as its nearest double (0.0010000000474974513).
double as_written(float value) {
  char text[32];
  const auto end = std::to_chars(text, text + sizeof text - 1, value).ptr;
  *end = '\0';
  return std::strtod(text, nullptr);
}

std::string host_name() {
  char name[256] = "";
  if (::gethostname(name, sizeof name - 1) != 0) return "";
  return name;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0) {
      const std::size_t colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(" \t", colon + 1));
    }
  }
  return "";
}

// 1234567 -> "1.23M", 81234 -> "81.2k", 950 -> "950".
std::string si(double value) {
  char text[32];
  if (!std::isfinite(value)) return "?";
  if (value >= 1e9)
    std::snprintf(text, sizeof text, "%.3gG", value / 1e9);
  else if (value >= 1e6)
    std::snprintf(text, sizeof text, "%.3gM", value / 1e6);
  else if (value >= 1e3)
    std::snprintf(text, sizeof text, "%.3gk", value / 1e3);
  else
    std::snprintf(text, sizeof text, "%.0f", value);
  return text;
}

std::string fixed(double value, int decimals) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

enum class Mode { kTrain, kBenchmark, kDownloadOnly };

Mode mode_of(const Options& o) {
  if (o.download_only) return Mode::kDownloadOnly;
  if (o.benchmark) return Mode::kBenchmark;
  return Mode::kTrain;
}

const char* mode_name(Mode mode) {
  switch (mode) {
    case Mode::kTrain:
      return "train";
    case Mode::kBenchmark:
      return "benchmark";
    case Mode::kDownloadOnly:
      return "download_only";
  }
  return "train";
}

json devices_json(const RunRecord& r) {
  json d = json::object();
  const bool cpu = r.backend && *r.backend == BackendKind::kCpu && r.used.empty();
  d["kind"] = !r.used.empty() ? "gpu" : cpu ? "cpu" : "none";
  if (cpu) {
    d["description"] = "CPU backend: no GPU used";
    d["cpu_model"] = cpu_model();
    d["cpu_threads"] = std::thread::hardware_concurrency();
  }
  d["used"] = json::array();
  for (const DeviceInfo& device : r.used) d["used"].push_back(device_json(device));
  if (r.probe) {
    json probe = gpu_environment_json(*r.probe, r.visible);
    for (auto it = probe.begin(); it != probe.end(); ++it) d[it.key()] = it.value();
    d["probe"] = describe(*r.probe);
    if (!r.device_error.empty()) d["error"] = r.device_error;
  } else {
    d["probe"] = nullptr;  // CUDA was not asked (--backend cpu, or the run ended before)
  }
  return d;
}

json dataset_json(const RunRecord& r) {
  const Options& o = *r.options;
  json d;
  if (r.data) {
    const DataOrigin& origin = r.data->origin;
    d["name"] = origin.dataset;
    d["loaded"] = true;
    d["description"] = origin.description;
    d["sources"] = origin.sources;
    d["fetch_seconds"] = origin.fetch_seconds;
    d["downloaded_bytes"] = origin.downloaded_bytes;
    d["train_images"] = r.data->train_images;
    d["validation_images"] = r.data->validation_images;
    d["test_images"] = r.data->test_images;
  } else {
    d["name"] = o.fake_data ? "synthetic" : o.dataset;
    d["loaded"] = false;
  }
  if (!o.fake_data) d["data_dir"] = o.data_dir;
  return d;
}

json training_json(const TrainResult& t) {
  // A non-finite loss (no training step yet) is written as null.
  return {{"train_steps", t.train_steps},
          {"steps_this_run", t.steps_this_run},
          {"final_accuracy", t.final_accuracy},
          {"best_accuracy", t.best_accuracy},
          {"best_step", t.best_step},
          {"final_loss", std::isfinite(t.final_loss) ? json(t.final_loss) : json(nullptr)},
          {"seconds", t.seconds},
          {"images_per_second", t.images_per_second}};
}

// "NVIDIA H200 GPU-8f6e…", or "CPU backend".
std::string devices_in_a_few_words(const RunRecord& r) {
  std::string text;
  for (const DeviceInfo& d : r.used) text += (text.empty() ? "" : ", ") + d.name + " " + d.uuid;
  if (text.empty() && r.backend && *r.backend == BackendKind::kCpu) text = "CPU backend";
  return text;
}

std::string benchmark_in_a_few_words(const RunRecord& r) {
  std::string text = "benchmark";
  const std::string where = devices_in_a_few_words(r);
  if (!where.empty()) text += " on " + where;
  const json& b = r.benchmark;
  if (!b.is_object()) return text;
  // Rows without the expected fields are left out, never an exception.
  const auto rows = [&b](const char* key) {
    const json list = b.value(key, json::array());
    return list.is_array() ? list : json::array();
  };
  std::string seed;
  for (const json& row : rows("seed_job")) {
    if (!row.is_object() || !row.contains("ms") || !row["ms"].is_number()) continue;
    seed += std::string(seed.empty() ? "" : ", ") + row.value("backend", "?") + " " +
            fixed(row["ms"].get<double>(), 1) + " ms";
    if (row.contains("summaries_ratio") && row["summaries_ratio"].is_number())
      seed += " (" + fixed(row["summaries_ratio"].get<double>(), 2) + "x with summaries)";
  }
  if (!seed.empty()) text += ": seed job " + seed;
  const json* fastest = nullptr;
  const json steps = rows("steps");
  for (const json& row : steps) {
    if (row.is_object() && row.contains("images_per_s") && row["images_per_s"].is_number() &&
        (!fastest || row["images_per_s"].get<double>() > (*fastest)["images_per_s"].get<double>()))
      fastest = &row;
  }
  if (fastest) {
    text += std::string(seed.empty() ? ": " : "; ") + "fastest step " +
            fastest->value("backend", "?") + " " + si((*fastest)["images_per_s"].get<double>()) +
            " images/s at batch " + std::to_string(fastest->value("batch", 0));
    const std::string precision = fastest->value("precision", "fp32");
    if (precision != "fp32") text += " (" + precision + ")";
  }
  return text;
}

std::string passed_in_a_few_words(const RunRecord& r) {
  const Options& o = *r.options;
  switch (mode_of(o)) {
    case Mode::kBenchmark:
      try {
        return benchmark_in_a_few_words(r);
      } catch (const nlohmann::json::exception&) {  // a report of another shape: say less
        return "benchmark";
      }
    case Mode::kDownloadOnly: {
      std::string text = o.dataset + " verified in " + o.data_dir;
      if (r.data) {
        text += " (" + std::to_string(r.data->origin.sources.size()) + " files, " +
                fixed(double(r.data->origin.downloaded_bytes) / 1e6, 1) + " MB downloaded in " +
                fixed(r.data->origin.fetch_seconds, 1) + " s)";
      }
      return text;
    }
    case Mode::kTrain:
      break;
  }
  std::string text = "trained";
  if (r.training) {
    const TrainResult& t = *r.training;
    text = "test accuracy " + format_accuracy(t.final_accuracy) + " (best " +
           format_accuracy(t.best_accuracy) + ") after " + std::to_string(t.train_steps) +
           " steps, " + si(t.images_per_second) + " images/s";
  }
  const std::string where = devices_in_a_few_words(r);
  if (!where.empty()) text += ", " + where;
  return text;
}

std::string describe_entry(const struct stat& st) {
  if (S_ISLNK(st.st_mode)) return "a symbolic link";
  if (S_ISDIR(st.st_mode)) return "a folder";
  if (S_ISFIFO(st.st_mode)) return "a FIFO";
  if (S_ISSOCK(st.st_mode)) return "a socket";
  if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) return "a device";
  return "not a regular file";
}

std::string os_error(int error) { return std::strerror(error); }

// The kernel interfaces whose entries look like regular files: writing one is a command to the
// kernel (/proc/self/comm renames the process), never a message. nullptr for any other file system.
const char* kernel_file_system(const struct statfs& fs) {
  switch (static_cast<unsigned long>(fs.f_type)) {
    case PROC_SUPER_MAGIC:
      return "/proc";
    case SYSFS_MAGIC:
      return "/sys";
    case CGROUP_SUPER_MAGIC:
    case CGROUP2_SUPER_MAGIC:
      return "a cgroup file system";
    case DEBUGFS_MAGIC:
    case TRACEFS_MAGIC:
    case SECURITYFS_MAGIC:
    case SELINUX_MAGIC:
    case SMACK_MAGIC:
    case PSTOREFS_MAGIC:
    case EFIVARFS_MAGIC:
    case BPF_FS_MAGIC:
    case NSFS_MAGIC:
      return "a kernel file system";
    default:
      return nullptr;
  }
}

std::string kernel_file_refusal(const char* file_system) {
  return std::string("a file of ") + file_system + " (a kernel interface)";
}

// What under a verdict file's name keeps the verdict out, or "". A file the user named is written
// only where nothing else lies; a link planted under log_dir/result.json is replaced (rename),
// never written through, like every output there; a folder is never replaced.
std::string verdict_file_problem(const VerdictFile& target) {
  struct stat st {};
  if (::lstat(target.path.c_str(), &st) != 0 || S_ISREG(st.st_mode)) return "";
  if (!S_ISDIR(st.st_mode) && target.flag == "--log_dir") return "";
  return target.path + ": " + describe_entry(st) + " is in the verdict's place (" + target.flag +
         "), and is never written over: remove it or name another file";
}

// A check in the verdict: a non-finite number is null (JSON has none).
json check_json(const RunCheck& c) {
  const auto number = [](double x) { return std::isfinite(x) ? json(x) : json(nullptr); };
  json value = std::holds_alternative<double>(c.check.value)
                   ? number(std::get<double>(c.check.value))
                   : json(std::get<std::string>(c.check.value));
  return {{"gpu", c.gpu ? json(*c.gpu) : json(nullptr)},
          {"name", c.check.name},
          {"value", value},
          {"threshold", c.check.threshold ? number(*c.check.threshold) : json(nullptr)},
          {"unit", c.check.unit},
          {"status", health::status_name(c.check.status)},
          {"detail", c.check.detail}};
}

// The termination message's part from " | " is at most this long (a node name of 253 bytes, a
// check's detail cut to kCheckDetailLimit): the run's own message keeps most of the 4 KiB.
constexpr std::size_t kCheckDetailLimit = 512;
constexpr std::size_t kTailLimit = 1024;

std::string number_text(double x) {
  char text[32];
  std::snprintf(text, sizeof text, "%.6g", x);
  return text;
}

// "GPU 0 ecc_uncorrected_volatile 2 errors (threshold 0): detail"
std::string check_in_a_few_words(const RunCheck& c) {
  std::string text = c.gpu ? "GPU " + std::to_string(*c.gpu) + " " : "";
  text += c.check.name + " ";
  text += std::holds_alternative<double>(c.check.value)
              ? number_text(std::get<double>(c.check.value))
              : std::get<std::string>(c.check.value);
  if (!c.check.unit.empty()) text += " " + c.check.unit;
  if (c.check.threshold) text += " (threshold " + number_text(*c.check.threshold) + ")";
  if (!c.check.detail.empty()) text += ": " + one_line(c.check.detail, kCheckDetailLimit);
  return text;
}

// What a verdict file holds in its format.
std::string verdict_text(const VerdictFile& target, const json& verdict,
                         SystemClock::time_point finished_at) {
  return target.format == VerdictFile::Format::kPrometheus ? metrics_text(verdict, finished_at)
                                                           : dump(verdict);
}

// Writes one verdict file, making its folder first (a run can fail before check_outputs made it).
// Returns "" or what went wrong.
std::string write_verdict_file(const VerdictFile& target, const std::string& text) {
  const std::string& path = target.path;
  try {
    const std::filesystem::path p(path);
    if (!p.has_filename()) return path + ": not a file name (" + target.flag + ")";
    check_path_fits(path, kTemporarySuffixBytes, target.flag);  // no folder made for it then
    const std::string dir = p.parent_path().string();
    ensure_writable_directory(dir.empty() ? "." : dir, target.flag, ExitCode::kOutputFailed);
    if (const std::string problem = verdict_file_problem(target); !problem.empty()) return problem;
    write_file_atomically(path, {text.begin(), text.end()}, ExitCode::kOutputFailed);
    return "";
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return path + ": unknown error";
  }
}

}  // namespace

const char* program_version() { return MNIST_VERSION; }

std::string exit_code_name(int code) {
  switch (static_cast<ExitCode>(code)) {
    case ExitCode::kOk:
      return "ok";
    case ExitCode::kInternal:
      return "internal error";
    case ExitCode::kBadArguments:
      return "bad arguments";
    case ExitCode::kDataUnavailable:
      return "data unavailable";
    case ExitCode::kGpuUnusable:
      return "GPU unusable";
    case ExitCode::kDiverged:
      return "diverged";
    case ExitCode::kOutputFailed:
      return "output failed";
    case ExitCode::kDataInvalid:
      return "data invalid";
    case ExitCode::kInterrupted:
      return "interrupted (SIGINT)";
    case ExitCode::kTerminated:
      return "terminated (SIGTERM)";
  }
  return "exit " + std::to_string(code);
}

std::string exit_code_token(int code) {
  switch (static_cast<ExitCode>(code)) {
    case ExitCode::kOk:
      return "ok";
    case ExitCode::kInternal:
      return "internal";
    case ExitCode::kBadArguments:
      return "bad_arguments";
    case ExitCode::kDataUnavailable:
      return "data_unavailable";
    case ExitCode::kGpuUnusable:
      return "gpu_unusable";
    case ExitCode::kDiverged:
      return "diverged";
    case ExitCode::kOutputFailed:
      return "output_failed";
    case ExitCode::kDataInvalid:
      return "data_invalid";
    case ExitCode::kInterrupted:
      return "interrupted";
    case ExitCode::kTerminated:
      return "terminated";
  }
  return "exit_" + std::to_string(code);
}

const std::vector<Reason>& reasons() {
  using C = ExitCode;
  static const std::vector<Reason> all = {
      {"ok", C::kOk, "the run passed"},
      {"internal", C::kInternal, "a bug: an exception nothing expected"},
      {"usage", C::kBadArguments,
       "a flag, a batch too large, a checkpoint folder in use, host memory too small"},
      {"library_missing", C::kBadArguments,
       "a library the run needs cannot be loaded: cuBLASLt for the cublas backend, NCCL for "
       "several GPUs or processes"},
      {"data_unavailable", C::kDataUnavailable, "the data could not be fetched"},
      {"peers_lost", C::kDataUnavailable,
       "another process of the run, NCCL or the network between them failed (after the data "
       "loaded)"},
      {"cuda_error", C::kGpuUnusable, "a CUDA call failed"},
      {"no_device", C::kGpuUnusable, "no CUDA device, or fewer than --gpus asks for"},
      {"driver_too_old", C::kGpuUnusable, "the NVIDIA driver is older than the CUDA runtime"},
      {"wrong_answer", C::kGpuUnusable, "a GPU computed a wrong answer in its self-check"},
      {"unhealthy", C::kGpuUnusable, "a GPU health check failed (NVML)"},
      {"slow", C::kGpuUnusable, "a GPU was slower than its floor (the speed probe)"},
      {"stalled", C::kGpuUnusable, "a GPU step did not finish in time"},
      {"diverged", C::kDiverged, "the loss became NaN or Inf"},
      {"accuracy_below_floor", C::kDiverged, "the final test accuracy is below its floor"},
      {"output_failed", C::kOutputFailed, "an output could not be written"},
      {"data_invalid", C::kDataInvalid, "data or checkpoint present but corrupt"},
      {"interrupted", C::kInterrupted, "stopped by SIGINT"},
      {"terminated", C::kTerminated, "stopped by SIGTERM"},
  };
  return all;
}

std::string node_name(const char* node_env, const std::string& host) {
  const auto valid = [](const std::string& name) {
    return !name.empty() && name.size() <= 253 &&
           std::all_of(name.begin(), name.end(), [](char c) { return c > ' ' && c < 0x7f; });
  };
  if (node_env && valid(node_env)) return node_env;
  return valid(host) ? host : "unknown";
}

std::string node_name() { return node_name(std::getenv("NODE_NAME"), host_name()); }

json provenance_json(SystemClock::time_point now) {
  return {{"timestamp", iso8601_utc(now)}, {"host", host_name()}, {"node", node_name()}};
}

std::string run_reason(const RunRecord& r, const Outcome& outcome) {
  const auto known = std::find_if(reasons().begin(), reasons().end(), [&](const Reason& x) {
    return x.token == r.reason && x.code == outcome.code;
  });
  if (known != reasons().end()) return known->token;
  if (outcome.code == ExitCode::kDataUnavailable && r.data) return "peers_lost";
  if (outcome.code == ExitCode::kGpuUnusable) {
    if (r.probe && r.probe->device_count == 0) {
      // No driver at all (version 0) reads as an insufficient one too: that is no device.
      const bool old_driver =
          r.probe->driver_version > 0 &&
          (r.probe->driver_version < r.probe->runtime_version ||
           r.probe->error.find("cudaErrorInsufficientDriver") != std::string::npos);
      return old_driver ? "driver_too_old" : "no_device";
    }
    if (r.probe && r.options) {
      const GpuSelection& gpus = r.options->gpus;
      const int visible = r.probe->device_count;
      if ((gpus.kind == GpuSelection::Kind::kFirst && gpus.first > visible) ||
          std::any_of(gpus.list.begin(), gpus.list.end(), [&](int g) { return g >= visible; }))
        return "no_device";
    }
  }
  for (const Reason& x : reasons())
    if (x.code == outcome.code) return x.token;
  return "internal";
}

std::vector<RunCheck> run_checks(const RunRecord& r, const Outcome& outcome) {
  using health::Check;
  using health::Status;
  std::vector<RunCheck> checks = r.gpu_checks;
  const auto add = [&checks](Check check) { checks.push_back({std::nullopt, std::move(check)}); };
  if (run_reason(r, outcome) == "wrong_answer") {
    add({"gpu_self_check", std::string("wrong answer"), std::nullopt, "", Status::kFail,
         outcome.message});
  } else if (r.self_checked_gpus > 0) {
    add({"gpu_self_check", double(r.self_checked_gpus), std::nullopt, "GPUs", Status::kPass,
         "each GPU's GEMM product on fixed data is within fp32 rounding of the host's, and GPUs "
         "of one model agree bit for bit"});
  }
  if (r.training) {
    const TrainResult& t = *r.training;
    const double floor = r.accuracy_floor;
    const bool below = floor > 0 && !(t.final_accuracy >= floor);
    add({"accuracy", t.final_accuracy, floor > 0 ? std::optional<double>(floor) : std::nullopt, "",
         below ? Status::kFail : Status::kPass,
         "final test accuracy " + format_accuracy(t.final_accuracy) +
             (floor > 0 ? (below ? " is below the floor " : " reaches the floor ") +
                              format_accuracy(floor)
                        : std::string(" (no floor set)"))});
  }
  if (outcome.code == ExitCode::kDiverged && run_reason(r, outcome) == "diverged") {
    add({"finite_loss", std::string("NaN or Inf"), std::nullopt, "", Status::kFail,
         outcome.message});
  } else if (r.training) {
    const double loss = r.training->final_loss;
    if (std::isfinite(loss))
      add({"finite_loss", loss, std::nullopt, "", Status::kPass, "the final loss is finite"});
    else
      add({"finite_loss", std::string("none"), std::nullopt, "", Status::kUnavailable,
           "no training step ran in this process"});
  }
  return checks;
}

RunRecord::RunRecord(int argc, const char* const* argv)
    : started_at(SystemClock::now()), started(std::chrono::steady_clock::now()), node(node_name()) {
  for (int i = 0; i < argc; ++i) command_line.emplace_back(argv[i] ? argv[i] : "");
}

void RunRecord::note_gpus(bool use, const std::vector<int>& ordinals) {
  probe = probe_gpus();
  visible = visible_devices(&device_error);
  used.clear();
  if (use)
    for (int ordinal : ordinals) used.push_back(device_info(ordinal));
}

void RunRecord::note_data(const MnistData& d) {
  data = DataSummary{d.origin, d.train.count, d.validation.count, d.test.count};
}

json device_json(const DeviceInfo& d) {
  return {{"ordinal", d.ordinal},
          {"name", d.name},
          {"compute_capability", std::to_string(d.major) + "." + std::to_string(d.minor)},
          {"multiprocessors", d.multiprocessors},
          {"total_memory_bytes", d.total_memory_bytes},
          {"total_memory_gib", double(d.total_memory_bytes) / double(1 << 30)},
          {"pci_bus_id", d.pci_bus_id},
          {"uuid", d.uuid}};
}

json gpu_environment_json(const GpuProbe& probe, const std::vector<DeviceInfo>& visible) {
  json env = {{"driver_version", cuda_version_string(probe.driver_version)},
              {"runtime_version", cuda_version_string(probe.runtime_version)},
              {"visible_count", probe.device_count},
              {"visible", json::array()}};
  for (const DeviceInfo& d : visible) env["visible"].push_back(device_json(d));
  if (!probe.error.empty()) env["probe_error"] = probe.error;
  return env;
}

json verdict_json(const RunRecord& r, const Outcome& outcome, SystemClock::time_point finished_at) {
  const int code = static_cast<int>(outcome.code);
  json v;
  v["program"] = "mnist-train";
  v["version"] = program_version();
  v["schema_version"] = kResultSchemaVersion;
  v["verdict"] = code == 0 ? "passed" : "failed";
  v["reason"] = run_reason(r, outcome);
  v["exit_code"] = code;
  v["exit_name"] = exit_code_token(code);
  v["exit_description"] = exit_code_name(code);
  if (code != 0) v["error"] = outcome.message;
  v["node"] = r.node;
  v["hostname"] = host_name();
  v["started_at"] = iso8601_utc(r.started_at);
  v["finished_at"] = iso8601_utc(finished_at);
  v["wall_seconds"] =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - r.started).count();
  v["command_line"] = r.command_line;
  v["checks"] = json::array();
  for (const RunCheck& check : run_checks(r, outcome)) v["checks"].push_back(check_json(check));
  if (!r.options) return v;
  const Options& o = *r.options;
  v["mode"] = mode_name(mode_of(o));
  v["backend"] = r.backend ? json(backend_name(*r.backend)) : json(nullptr);
  v["backend_requested"] = backend_name(o.backend);
  v["model"] = model_name(o.model);
  if (o.model == ModelKind::kMlp) v["hidden_units"] = o.hidden_units;
  v["batch_size"] = o.batch_size;
  v["precision"] = precision_name(o.precision);
  v["step_kernel"] = r.step_kernel.empty() ? json(nullptr) : json(r.step_kernel);
  v["seed"] = o.seed;
  v["max_steps"] = o.max_steps;
  v["learning_rate"] = as_written(o.learning_rate);
  v["dropout_keep"] = as_written(o.dropout_keep);
  v["eval_every"] = o.eval_every;
  v["log_dir"] = o.log_dir;
  v["checkpoint_dir"] = o.checkpoint_dir.empty() ? json(nullptr) : json(o.checkpoint_dir);
  v["devices"] = devices_json(r);
  if (r.data_parallel) {
    const RunRecord::DataParallel& p = *r.data_parallel;
    v["data_parallel"] = {{"rank", p.rank},
                          {"world_size", p.world_size},
                          {"first_rank", p.first_rank},
                          {"gpus_in_world", p.ranks},
                          {"nccl", p.nccl},
                          {"all_reduce",
                           {{"bytes", p.all_reduce_bytes},
                            {"latency_us", p.all_reduce_us},
                            {"algorithm_bandwidth_gbps", p.algorithm_gbps},
                            {"bus_bandwidth_gbps", p.bus_gbps}}},
                          {"parameters_agree", p.parameters_agree}};
  }
  v["dataset"] = dataset_json(r);
  v["training"] = r.training ? training_json(*r.training) : json(nullptr);
  if (mode_of(o) == Mode::kBenchmark) v["benchmark"] = r.benchmark;
  return v;
}

std::string one_line(const std::string& text, std::size_t limit) {
  std::string line = text;
  for (char& c : line) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) c = ' ';
  }
  if (line.size() <= limit) return line;
  const std::string ellipsis = "...";
  if (limit <= ellipsis.size()) return ellipsis.substr(0, limit);
  std::size_t cut = limit - ellipsis.size();
  // Never split a UTF-8 sequence: back off over continuation bytes (10xxxxxx) to a lead byte.
  while (cut > 0 && (static_cast<unsigned char>(line[cut]) & 0xC0) == 0x80) --cut;
  return line.substr(0, cut) + ellipsis;
}

std::string termination_line(const RunRecord& r, const Outcome& outcome) {
  const int code = static_cast<int>(outcome.code);
  std::string text = std::string("mnist-train ") + program_version() + " ";
  if (code != 0) {
    text += "failed (exit " + std::to_string(code) + ", " + exit_code_name(code) +
            "): " + outcome.message;
  } else {
    text += "passed";
    if (r.options) text += ": " + passed_in_a_few_words(r);
  }
  // What a fleet acts on comes last and is never cut: the reason, the node, the first failing
  // check (else the first warning).
  std::string tail = " | reason=" + run_reason(r, outcome) + " node=" + r.node;
  const std::vector<RunCheck> checks = run_checks(r, outcome);
  const auto first = [&checks](health::Status status) {
    return std::find_if(checks.begin(), checks.end(),
                        [status](const RunCheck& c) { return c.check.status == status; });
  };
  if (const auto failed = first(health::Status::kFail); failed != checks.end())
    tail += " check=" + check_in_a_few_words(*failed);
  else if (const auto warned = first(health::Status::kWarn); warned != checks.end())
    tail += " warning=" + check_in_a_few_words(*warned);
  tail = one_line(tail, kTailLimit);
  return one_line(text, kTerminationMessageLimit - 1 - tail.size()) + tail;
}

std::vector<VerdictFile> verdict_files(const Options& o) {
  std::vector<VerdictFile> files;
  if (mode_of(o) == Mode::kTrain && !o.log_dir.empty())
    files.push_back({(std::filesystem::path(o.log_dir) / "result.json").string(), "--log_dir"});
  if (!o.result_file.empty()) files.push_back({o.result_file, "--result_file"});
  if (!o.metrics_file.empty())
    files.push_back({o.metrics_file, "--metrics_file", VerdictFile::Format::kPrometheus});
  return files;
}

void check_verdict_file(const VerdictFile& file) {
  if (const std::string problem = verdict_file_problem(file); !problem.empty())
    throw Error(ExitCode::kOutputFailed, problem);
}

std::string termination_log_refusal(const std::string& path) {
  if (path.empty()) return "";
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return "";  // nothing there: never written
  if (!S_ISREG(st.st_mode)) return describe_entry(st);
  struct statfs fs {};
  if (::statfs(path.c_str(), &fs) == 0) {
    if (const char* kernel = kernel_file_system(fs)) return kernel_file_refusal(kernel);
  }
  return "";
}

TerminationLogResult write_termination_log(const std::string& path, const std::string& line) {
  using S = TerminationLogStatus;
  if (path.empty()) return {S::kDisabled, ""};
  // Looked at first without opening (opening a device can have effects of its own) ...
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    const int e = errno;
    if (e == ENOENT || e == ENOTDIR) return {S::kAbsent, ""};
    return {S::kNotWritable, os_error(e)};
  }
  if (!S_ISREG(st.st_mode)) return {S::kRefused, describe_entry(st)};
  struct statfs fs {};
  if (::statfs(path.c_str(), &fs) == 0 && kernel_file_system(fs))
    return {S::kRefused, kernel_file_refusal(kernel_file_system(fs))};
  // ... then opened without following a link or waiting on a FIFO, and checked again: something
  // else may have been put under the name in between.
  const int fd = ::open(path.c_str(), O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    if (e == ENOENT || e == ENOTDIR) return {S::kAbsent, ""};
    if (e == EACCES || e == EPERM || e == EROFS || e == ETXTBSY)
      return {S::kNotWritable, os_error(e)};
    if (e == ELOOP) return {S::kRefused, "a symbolic link"};
    if (e == ENXIO) return {S::kRefused, "a FIFO or socket"};
    if (e == EISDIR) return {S::kRefused, "a folder"};
    return {S::kFailed, os_error(e)};
  }
  struct Closer {
    int fd;
    ~Closer() {
      if (fd >= 0) ::close(fd);
    }
  } closer{fd};
  if (::fstat(fd, &st) != 0 || ::fstatfs(fd, &fs) != 0) return {S::kFailed, os_error(errno)};
  if (!S_ISREG(st.st_mode)) return {S::kRefused, describe_entry(st)};
  if (const char* kernel = kernel_file_system(fs))
    return {S::kRefused, kernel_file_refusal(kernel)};
  // Root may open any file for writing: a file nobody may write is not meant to be written.
  if ((st.st_mode & (S_IWUSR | S_IWGRP | S_IWOTH)) == 0)
    return {S::kNotWritable, "no write permission bit set"};
  const std::string text = one_line(line, kTerminationMessageLimit - 1) + "\n";
  if (::ftruncate(fd, 0) != 0) return {S::kFailed, os_error(errno)};
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return {S::kFailed, n < 0 ? os_error(errno) : "nothing written"};
    done += static_cast<std::size_t>(n);
  }
  const int fd_to_close = closer.fd;
  closer.fd = -1;
  if (::close(fd_to_close) != 0 && errno != EINTR) return {S::kFailed, os_error(errno)};
  return {S::kWritten, ""};
}

std::string summary_line(const TrainResult& t, const DataOrigin& origin) {
  char text[256];
  std::snprintf(text, sizeof text,
                "Summary: %lld training steps, %.0f images/s, %.3f s in the loop, %.1f s "
                "downloading (%.1f MB)",
                static_cast<long long>(t.steps_this_run),
                std::isfinite(t.images_per_second) ? t.images_per_second : 0.0, t.seconds,
                origin.fetch_seconds, double(origin.downloaded_bytes) / 1e6);
  return text;
}

namespace {

// Where --termination_log points when the command line could not be parsed: its value if it is
// there in a readable form ("--termination_log PATH" or "--termination_log=PATH"), else the
// default. A typo in a Job's args is what a Kubernetes user most needs the message for.
std::string termination_log_of(const std::vector<std::string>& command_line) {
  std::string path = kDefaultTerminationLog;
  const std::string flag = "--termination_log";
  for (std::size_t i = 1; i < command_line.size(); ++i) {
    const std::string& arg = command_line[i];
    if (arg == flag && i + 1 < command_line.size()) path = command_line[i + 1];
    if (arg.compare(0, flag.size() + 1, flag + "=") == 0) path = arg.substr(flag.size() + 1);
  }
  return path;
}

}  // namespace

int finish_run(RunRecord& record, const Outcome& outcome, std::ostream& err) noexcept {
  Outcome final = outcome;
  try {
    if (!record.options) {  // the flags did not parse: only the termination message
      write_termination_log(termination_log_of(record.command_line),
                            termination_line(record, final));
      return static_cast<int>(outcome.code);
    }
    if (record.options->dry_run) return static_cast<int>(outcome.code);
    const Options& o = *record.options;
    // A GPU failure before the devices were noted: ask CUDA now, so the verdict says what it saw.
    if (outcome.code == ExitCode::kGpuUnusable && !record.probe && o.backend != BackendKind::kCpu) {
      try {
        record.note_gpus(false);
      } catch (...) {
      }
    }
    const auto finished_at = SystemClock::now();
    const std::vector<VerdictFile> paths = verdict_files(o);
    std::vector<bool> written(paths.size(), false);
    std::string first_failure;
    const json verdict = verdict_json(record, final, finished_at);
    for (std::size_t i = 0; i < paths.size(); ++i) {
      const std::string problem =
          write_verdict_file(paths[i], verdict_text(paths[i], verdict, finished_at));
      written[i] = problem.empty();
      if (!written[i]) {
        clear_status();
        err << "mnist-train: error: cannot write the verdict: " << problem << std::endl;
        if (first_failure.empty()) first_failure = problem;
      }
    }
    if (!first_failure.empty() && final.code == ExitCode::kOk) {
      // The run did not pass after all: the verdicts already written must say so too.
      final = {ExitCode::kOutputFailed, "cannot write the verdict: " + first_failure};
      const json corrected = verdict_json(record, final, finished_at);
      for (std::size_t i = 0; i < paths.size(); ++i) {
        if (!written[i]) continue;
        const std::string problem =
            write_verdict_file(paths[i], verdict_text(paths[i], corrected, finished_at));
        if (!problem.empty())
          err << "mnist-train: error: cannot write the verdict: " << problem << std::endl;
      }
    }
    const TerminationLogResult t =
        write_termination_log(o.termination_log, termination_line(record, final));
    if (t.status == TerminationLogStatus::kRefused || t.status == TerminationLogStatus::kFailed) {
      clear_status();
      err << "mnist-train: warning: termination message not written to " << o.termination_log
          << ": " << t.detail << std::endl;
    }
  } catch (const std::exception& e) {
    try {
      err << "mnist-train: error: cannot write the verdict: " << e.what() << std::endl;
    } catch (...) {
    }
    if (final.code == ExitCode::kOk) final.code = ExitCode::kOutputFailed;
  } catch (...) {
    if (final.code == ExitCode::kOk) final.code = ExitCode::kOutputFailed;
  }
  return static_cast<int>(final.code);
}

}  // namespace mnist
