#include "app/cli.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <limits>
#include <sstream>

#include "dist/rendezvous.h"
#include "error.h"
#include "kernels/common/fused_step_limits.h"

// The project version (CMakeLists.txt's project(VERSION)), defined by the build.
#ifndef MNIST_VERSION
#define MNIST_VERSION "unknown"
#endif

namespace mnist {
namespace {

// The ranges of the numeric flags (--help shows them). Wide enough for any real run, narrow enough
// that nothing downstream overflows, divides by ~0 or turns a timeout off.
constexpr std::int64_t kMaxIterations = 1'000'000'000;  // --max_steps, --eval_every, checkpoints
constexpr double kMinLearningRate = 1e-10;              // below it float weights would hardly move
// Finite as a float. Adam moves each weight by about the rate per step, so only rates near 1e20
// make the loss overflow within tens of steps: the exit-code tests provoke exit 5 with 1e30.
constexpr double kMaxLearningRate = 1e30;
constexpr double kMinKeep = 1e-6;  // inverted dropout scales by 1/keep: keep it a float, not inf
constexpr int kMaxHiddenUnits = 65536;
constexpr int kMaxBatch = 1 << 20;
constexpr double kMinTimeout = 0.1;  // libcurl takes milliseconds, and 0 means "no timeout"
constexpr double kMaxTimeout = 3600;
constexpr int kMaxAttempts = 100;
constexpr int kMaxBenchmarkSteps = 1 << 24;
constexpr std::int64_t kMaxCheckpointSeconds = 7 * 24 * 3600;
constexpr int kMaxGpuOrdinal = 1023;
constexpr double kMinRendezvousTimeout = 1;
constexpr double kMaxRendezvousTimeout = 24 * 3600;

// ---- Values as messages show them ----

// A value as an error message shows it: quoted, and cut short (it may be anything).
std::string shown(const std::string& text) {
  constexpr std::size_t kLongest = 40;
  return '"' + (text.size() > kLongest ? text.substr(0, kLongest) + "..." : text) + '"';
}

// A bound as --help and messages show it: "0.001", "1e+30", never 309 digits.
std::string readable(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
}
template <class Int>
std::string range_of(Int lo, Int hi) {
  return std::to_string(lo) + " to " + std::to_string(hi);
}
std::string range_of(double lo, double hi) { return readable(lo) + " to " + readable(hi); }

[[noreturn]] void refuse(const std::string& what) {
  throw Error(ExitCode::kBadArguments, what + " (see --help)");
}
[[noreturn]] void refuse(const std::string& flag, const std::string& text, const std::string& why) {
  refuse(flag + " " + shown(text) + ": " + why);
}

// ---- Numbers: the whole text must be one number in range, or the flag is refused ----

// Optional '-', then decimal digits only: strtol would read "1e3" as 1, "010" as 8 and wrap "-1"
// to 2^64-1 for unsigned types.
bool is_whole_number(const std::string& text) {
  const std::size_t first = !text.empty() && text[0] == '-' ? 1 : 0;
  return text.size() > first &&
         std::all_of(text.begin() + first, text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

template <class Int>
Int whole_number(const std::string& flag, const std::string& text, Int lo, Int hi) {
  if (!is_whole_number(text)) refuse(flag, text, "not a whole number");
  Int value{};
  const auto result = std::from_chars(text.data(), text.data() + text.size(), value);
  if (result.ec != std::errc() || value < lo || value > hi)  // too large, or "-1" for unsigned
    refuse(flag, text, "out of range (" + range_of(lo, hi) + ")");
  return value;
}

// A finite decimal number (from_chars: no locale, no hex, no leading space or '+').
double real_number(const std::string& flag, const std::string& text, double lo, double hi) {
  double value = 0;
  const char* end = text.data() + text.size();
  const auto result = std::from_chars(text.data(), end, value);
  const bool too_large_or_small = result.ec == std::errc::result_out_of_range;
  if (result.ptr != end || (result.ec != std::errc() && !too_large_or_small))
    refuse(flag, text, "not a number");
  if (!too_large_or_small && !std::isfinite(value)) refuse(flag, text, "not a finite number");
  if (too_large_or_small || !(value >= lo && value <= hi))
    refuse(flag, text, "out of range (" + range_of(lo, hi) + ")");
  return value;
}

std::string join(const std::vector<std::string>& items, const char* separator) {
  std::string out;
  for (const std::string& item : items) out += (out.empty() ? "" : separator) + item;
  return out;
}

std::string one_of(const std::string& flag, const std::string& text,
                   const std::vector<std::string>& names) {
  if (std::find(names.begin(), names.end(), text) == names.end())
    refuse(flag, text, "must be one of " + join(names, ", "));
  return text;
}

// "a,b,c", each item non-empty; repeated flags add their items.
std::vector<std::string> comma_items(const std::string& flag,
                                     const std::vector<std::string>& texts) {
  std::vector<std::string> items;
  for (const std::string& text : texts) {
    std::size_t begin = 0;
    for (;;) {
      const std::size_t comma = std::min(text.find(',', begin), text.size());
      if (comma == begin) refuse(flag, text, "empty item in the comma-separated list");
      items.push_back(text.substr(begin, comma - begin));
      if (comma == text.size()) break;
      begin = comma + 1;
    }
  }
  return items;
}

// ---- --checkpoint_every ----

struct Cadence {
  std::int64_t steps = 0;
  double seconds = 0;
};

// "N" training steps, "Ns" seconds, "Nm" minutes; 0 disables.
Cadence checkpoint_cadence(const std::string& text) {
  const char* flag = "--checkpoint_every";
  const bool timed = !text.empty() && (text.back() == 's' || text.back() == 'm');
  const std::string count = timed ? text.substr(0, text.size() - 1) : text;
  if (!is_whole_number(count))
    refuse(flag, text, "expected N (steps), Ns or Nm, e.g. 1000, 60s, 5m");
  if (!timed) return {whole_number<std::int64_t>(flag, text, 0, kMaxIterations), 0.0};
  const std::int64_t unit = text.back() == 'm' ? 60 : 1;
  std::int64_t n = 0;
  const auto result = std::from_chars(count.data(), count.data() + count.size(), n);
  if (result.ec != std::errc() || n < 0 || n > kMaxCheckpointSeconds / unit) {
    refuse(flag, text,
           "out of range (0s to " + std::to_string(kMaxCheckpointSeconds) + "s, a week)");
  }
  return {0, static_cast<double>(n * unit)};
}

// ---- --gpus ----

// "all", a count N (the first N visible GPUs) or a comma-separated list of distinct ordinals.
GpuSelection gpu_selection(const std::string& text) {
  const char* flag = "--gpus";
  GpuSelection selection;
  selection.text = text;
  if (text == "all") return selection;
  if (text.find(',') == std::string::npos) {
    if (!is_whole_number(text))
      refuse(flag, text, "expected all, a count N or a list of GPU ordinals like 0,2,3");
    selection.kind = GpuSelection::Kind::kFirst;
    if (text == "0") {
      refuse(flag, text,
             "a bare number is how many GPUs (1 or more); one particular GPU: "
             "CUDA_VISIBLE_DEVICES=N");
    }
    selection.first = whole_number(flag, text, 1, kMaxGpuOrdinal + 1);
    return selection;
  }
  selection.kind = GpuSelection::Kind::kList;
  for (const std::string& item : comma_items(flag, {text})) {
    if (item[0] == '-') refuse(flag, text, "GPU ordinals are 0 or more");
    const int ordinal = whole_number(flag, item, 0, kMaxGpuOrdinal);
    if (std::find(selection.list.begin(), selection.list.end(), ordinal) != selection.list.end())
      refuse(flag, text, "GPU " + item + " is listed twice");
    selection.list.push_back(ordinal);
  }
  return selection;
}

// ---- Tokens: what CLI11 reads ----

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t substitute =
          diagonal + (std::tolower(static_cast<unsigned char>(a[i - 1])) !=
                      std::tolower(static_cast<unsigned char>(b[j - 1])));
      diagonal = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, substitute});
    }
  }
  return row[b.size()];
}

// "; did you mean --NAME?" for the long flag closest to `typed` (dashes and "=value" stripped), or
// "" when none is close.
std::string closest_flag(const CLI::App& app, const std::string& typed) {
  constexpr std::size_t kLongestName = 64;  // beyond it nothing is close, and it stays cheap
  if (typed.empty() || typed.size() > kLongestName) return "";
  std::string best;
  std::size_t best_distance = std::max<std::size_t>(2, typed.size() / 3) + 1;
  for (const CLI::Option* option : app.get_options()) {
    for (const std::string& name : option->get_lnames()) {
      const std::size_t distance = edit_distance(typed, name);
      if (distance < best_distance) best = name, best_distance = distance;
    }
  }
  return best.empty() ? "" : "; did you mean --" + best + "?";
}

[[noreturn]] void refuse_unknown(const CLI::App& app, const std::string& arg) {
  const std::size_t dashes = std::min(arg.find_first_not_of('-'), arg.size());
  std::string typed = arg.substr(dashes);
  typed = typed.substr(0, typed.find('='));
  if (dashes == 0 || typed.empty())
    refuse("unexpected argument " + shown(arg) + closest_flag(app, typed));
  refuse("unknown flag " + arg.substr(0, std::min<std::size_t>(arg.size(), 64)) +
         closest_flag(app, typed));
}

// argv as CLI11 reads it without guessing: each option followed by its value as the next token, a
// flag alone. On its own CLI11 takes whatever follows an option as its value, a flag included
// ("--data_dir --dry_run" set data_dir to "--dry_run"), and reads "--log_dir=" as "take the next
// argument" (so "--log_dir= --fake_data" lost --fake_data). Here a value is what follows '=' (empty
// included) or the next argument unless that starts with "--": then the value was forgotten. A
// path that really starts with "--" can be written ./--x. Returned reversed, as CLI11 takes it.
std::vector<std::string> tokens_for_cli11(const CLI::App& app, int argc, const char* const* argv) {
  std::vector<std::string> tokens;
  std::vector<std::string> seen;  // single-value options given so far
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool is_long = arg.size() > 2 && arg.compare(0, 2, "--") == 0;
    const std::size_t equals = is_long ? arg.find('=') : std::string::npos;
    const std::string name = arg.substr(0, equals);
    const CLI::Option* option = nullptr;
    if (is_long && equals != 2) option = app.get_option_no_throw(name);
    if (arg == "-h") option = app.get_option_no_throw("-h");
    if (option == nullptr) refuse_unknown(app, arg);

    if (option->get_items_expected_max() == 0) {  // a flag: alone, or --flag=true|false
      if (equals != std::string::npos && equals + 1 == arg.size())
        refuse(name + " takes no value (or =true, =false)");
      tokens.push_back(arg);
      continue;
    }
    std::string value;
    if (equals != std::string::npos) {
      value = arg.substr(equals + 1);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      refuse(name + " needs a value");
    }
    if (value.compare(0, 2, "--") == 0) {
      refuse(name + " needs a value, but got " + shown(value) +
             ", which looks like a flag (write a path that starts with -- as ./--...)");
    }
    if (option->get_items_expected_max() == 1) {  // not a list: a second value is a conflict
      if (std::find(seen.begin(), seen.end(), name) != seen.end())
        refuse(name + " is given more than once");
      seen.push_back(name);
    }
    tokens.push_back(name);
    tokens.push_back(value);
  }
  std::reverse(tokens.begin(), tokens.end());
  return tokens;
}

// ---- The flags ----

// The text of each flag that parse_command_line converts itself, after CLI11 collected it: CLI11's
// own conversions use strtol with base 0 ("010" is 8), wrap negative unsigned values, and print
// range errors with every digit of a double.
struct FlagTexts {
  std::string max_steps, learning_rate, dropout, hidden_units, batch_size, eval_every, seed;
  std::string summary_every, gpus = "all", world_size = "1", rendezvous_timeout = "300";
  std::string download_timeout, download_attempts, benchmark_steps;
  std::string backend = "auto", model = "mlp", cuda_graphs = "on", precision = "fp32";
  std::string step_kernel = "auto";
  std::string min_accuracy = "auto", min_speed_ratio = "0.5", min_sibling_ratio = "0.8";
  std::string stall_timeout = "120";
  std::vector<std::string> benchmark_batches, benchmark_backends, benchmark_precisions;
};

FlagTexts defaults_of(const Options& o) {
  FlagTexts t;
  t.max_steps = std::to_string(o.max_steps);
  t.learning_rate = readable(o.learning_rate);
  t.dropout = readable(o.dropout_keep);
  t.hidden_units = std::to_string(o.hidden_units);
  t.batch_size = std::to_string(o.batch_size);
  t.eval_every = std::to_string(o.eval_every);
  t.summary_every = std::to_string(o.summary_every);
  t.seed = std::to_string(o.seed);
  t.download_timeout = readable(o.download_timeout_s);
  t.download_attempts = std::to_string(o.download_attempts);
  t.benchmark_steps = std::to_string(o.benchmark_steps);
  std::vector<std::string> batches;
  for (int batch : o.benchmark_batches) batches.push_back(std::to_string(batch));
  t.benchmark_batches = {join(batches, ",")};
  return t;
}

std::vector<std::string> concrete_backend_names() {  // every backend but "auto"
  std::vector<std::string> names;
  for (const auto& entry : kBackendNames)
    if (entry.value != BackendKind::kAuto) names.emplace_back(entry.name);
  return names;
}

void add_flags(CLI::App& app, Options& o, FlagTexts& t) {
  const auto in = [](auto lo, auto hi) { return "; " + range_of(lo, hi); };
  app.add_option("--max_steps", t.max_steps,
                 "Loop iterations (every 10th evaluates instead of training)" +
                     in(std::int64_t{0}, kMaxIterations))
      ->type_name("INT")
      ->capture_default_str();
  app.add_option("--learning_rate", t.learning_rate,
                 "Adam step size" + in(kMinLearningRate, kMaxLearningRate))
      ->type_name("FLOAT")
      ->capture_default_str();
  app.add_option("--dropout", t.dropout,
                 "KEEP probability of the hidden layer's dropout" + in(kMinKeep, 1.0))
      ->type_name("FLOAT")
      ->capture_default_str();
  app.add_option("--data_dir", o.data_dir, "Where the four .gz files are cached")
      ->capture_default_str();
  app.add_option("--log_dir", o.log_dir, "Summaries (train/ and test/ subfolders); empty: none")
      ->capture_default_str();
  app.add_flag("--fake_data", o.fake_data, "Synthetic data, no download");

  app.add_option("--backend", t.backend,
                 "auto (cuda when a GPU is visible, else cpu with a warning), cuda (hand-written "
                 "kernels; exits 4 without a usable GPU), cublas (cuBLASLt baseline; same exit 4), "
                 "cpu (reference)")
      ->capture_default_str();
  app.add_option("--model", t.model, "mlp (784-hidden-10, ReLU, dropout) or softmax (784-10)")
      ->capture_default_str();
  app.add_option("--hidden_units", t.hidden_units,
                 "Hidden layer width (mlp)" + in(1, kMaxHiddenUnits))
      ->type_name("INT")
      ->capture_default_str();
  app.add_option("--batch_size", t.batch_size, "Training batch size" + in(1, kMaxBatch))
      ->type_name("INT")
      ->capture_default_str();
  app.add_option(
         "--eval_every", t.eval_every,
         "Evaluate on the test set when step % N == 0" + in(std::int64_t{1}, kMaxIterations))
      ->type_name("INT")
      ->capture_default_str();
  app.add_option("--summary_every", t.summary_every,
                 "With --log_dir: weight and activation statistics, histograms and input images "
                 "every N training steps (1: every step, like the sample)" +
                     in(std::int64_t{1}, kMaxIterations))
      ->type_name("INT")
      ->capture_default_str();
  app.add_option("--seed", t.seed,
                 "Seed for initialisation, shuffling and dropout" +
                     in(std::uint64_t{0}, std::numeric_limits<std::uint64_t>::max()))
      ->type_name("UINT64")
      ->capture_default_str();
  app.add_option("--dataset", o.dataset, "mnist or fashion-mnist (same format, own mirrors)")
      ->capture_default_str();
  app.add_option("--mirror", o.mirrors,
                 "Base URL the four file names are appended to (repeatable, tried in order; "
                 "http(s):// or file://). Replaces MNIST_MIRROR and the built-in list")
      ->type_name("URL")
      ->allow_extra_args(false);  // one value per --mirror, taken as written (no "[a,b]" lists)
  app.add_option("--download_timeout", t.download_timeout,
                 "Seconds per download attempt" + in(kMinTimeout, kMaxTimeout))
      ->type_name("SECONDS")
      ->capture_default_str();
  app.add_option("--download_attempts", t.download_attempts,
                 "Attempts per mirror (back-off between)" + in(1, kMaxAttempts))
      ->type_name("INT")
      ->capture_default_str();
  app.add_option("--result_file", o.result_file,
                 "Also write the run's verdict (log_dir/result.json) to this file")
      ->type_name("PATH");
  app.add_option("--metrics_file", o.metrics_file,
                 "Also write the verdict as Prometheus metrics to this file, for the node "
                 "exporter's textfile collector (a name ending in .prom, which it reads)")
      ->type_name("PATH");
  app.add_option("--termination_log", o.termination_log,
                 "Write a one-line verdict here at exit if the file exists (Kubernetes' "
                 "termination message); empty: never")
      ->type_name("PATH")
      ->capture_default_str();
  app.add_option("--min_accuracy", t.min_accuracy,
                 "The final test accuracy a training run must reach, else exit 5 (reason "
                 "accuracy_below_floor); auto: 0.9 for real MNIST over 500 iterations or more (the "
                 "sample reaches 0.956 at 500; a broken optimiser stays far below), none for "
                 "shorter or synthetic runs; 0: none" +
                     in(0.0, 1.0))
      ->type_name("FLOAT|auto")
      ->capture_default_str();
  app.add_option("--min_speed_ratio", t.min_speed_ratio,
                 "GPU runs: each GPU's FP32 throughput and memory bandwidth must reach this "
                 "fraction of what its SM count, clocks and bus width promise, else exit 4 "
                 "(reason slow); a healthy H200 reaches about 0.9" +
                     in(0.0, 1.0))
      ->type_name("FLOAT")
      ->capture_default_str();
  app.add_option("--min_sibling_ratio", t.min_sibling_ratio,
                 "With several GPUs of one model: each must reach this fraction of the median of "
                 "the others, else exit 4 (reason slow)" +
                     in(0.0, 1.0))
      ->type_name("FLOAT")
      ->capture_default_str();
  app.add_option("--warn_only", o.warn_only,
                 "Checks whose failure only warns (comma-separated names from the verdict, e.g. "
                 "pcie_generation,nvlink_down); the others fail the run")
      ->type_name("CHECK,...")
      ->delimiter(',');
  app.add_option(
         "--stall_timeout_s", t.stall_timeout,
         "No progress (a step, an evaluation, a chunk of a download) for this many seconds "
         "ends the run with exit 4 (reason stalled) and a verdict, well before the Job's "
         "deadline; downloads and the first CUDA context have a longer allowance; 0: never" +
             in(0.0, 86400.0))
      ->type_name("SECONDS")
      ->capture_default_str();
  app.add_option("--checkpoint_dir", o.checkpoint_dir,
                 "Save parameters here periodically, on SIGTERM/SIGINT and at the end; resume "
                 "from it when present");
  app.add_option("--checkpoint_every", o.checkpoint_every,
                 "Periodic checkpoints with --checkpoint_dir: every N training steps, Ns seconds "
                 "or Nm minutes; 0: only at the end and when stopped")
      ->type_name("N|Ns|Nm")
      ->capture_default_str();

  app.add_option("--cuda_graphs", t.cuda_graphs,
                 "GPU backends replay each step and evaluation as a captured CUDA graph (on), or "
                 "launch each kernel eagerly (off: slower; for profilers and comparisons)")
      ->capture_default_str();
  app.add_option("--precision", t.precision,
                 "GPU backends: the arithmetic of the wide matrix products: fp32 (CUDA cores; the "
                 "reference), tf32 or bf16 (tensor cores, fp32 accumulation; compute capability "
                 "8.0 or newer, else exit 2). Parameters and Adam stay fp32. The cpu backend is "
                 "fp32 only; with tf32/bf16, auto means cuda")
      ->capture_default_str();
  app.add_option("--step_kernel", t.step_kernel,
                 "cuda backend: how a training step runs: fused (the whole step as one "
                 "cooperative kernel: mlp, fp32, one GPU, batch up to 128), tiled (a kernel per "
                 "stage), or auto (fused where it applies, else tiled)")
      ->capture_default_str();
  app.add_option("--gpus", t.gpus,
                 "cuda backend: the GPUs to train on, data-parallel over NCCL: all (every visible "
                 "GPU), N (the first N) or a list of CUDA ordinals like 0,2; --batch_size is the "
                 "global batch, split over them. Every one is checked first (exit 4 naming a "
                 "missing or faulty GPU). cublas trains on the first of them")
      ->type_name("all|N|LIST")
      ->capture_default_str();
  app.add_option("--world_size", t.world_size,
                 "Processes (pods of an Indexed Job) training together; this one's rank is "
                 "JOB_COMPLETION_INDEX" +
                     in(1, kMaxWorldSize))
      ->type_name("INT")
      ->capture_default_str();
  app.add_option("--rendezvous", o.rendezvous,
                 "With --world_size > 1: HOST:PORT where rank 0 listens and the others connect "
                 "(e.g. mnist-train-0.mnist-train:29400). Rank 0 binds the address HOST resolves "
                 "to (its own pod's), not every interface")
      ->type_name("HOST:PORT");
  app.add_option("--rendezvous_secret_file", o.rendezvous_secret_file,
                 "With --world_size > 1 (required; ignored without): a file holding the Job's "
                 "shared secret, at least 32 bytes (trailing newlines dropped), the same on every "
                 "process, e.g. a mounted Kubernetes Secret made with `openssl rand -hex 32`. "
                 "Each process proves it holds the secret without sending it, and the NCCL id "
                 "travels encrypted: nobody without it can join or end the run (exit 2 when it is "
                 "missing or short)")
      ->type_name("PATH");
  app.add_option("--rendezvous_timeout", t.rendezvous_timeout,
                 "Seconds every process waits for all of them to meet, and for any collective to "
                 "finish (exit 3 after)" +
                     in(kMinRendezvousTimeout, kMaxRendezvousTimeout))
      ->type_name("SECONDS")
      ->capture_default_str();
  app.add_flag("--download_only", o.download_only,
               "Download and verify the dataset into --data_dir, then exit (prepares air-gapped "
               "mirrors and container images)");
  app.add_flag("--dry_run", o.dry_run,
               "Check the flags, print the configuration and exit 0 (nothing else runs)");
  app.add_flag("--benchmark", o.benchmark,
               "Measure instead of training: step latency and throughput per backend and batch "
               "size, the seed job, time to 98% accuracy, peak device memory, our GEMMs vs "
               "cuBLASLt");
  app.add_option("--benchmark_batches", t.benchmark_batches,
                 "Batch sizes to time, comma-separated" + in(1, kMaxBatch))
      ->type_name("INT,...")
      ->allow_extra_args(false)
      ->capture_default_str();
  app.add_option("--benchmark_backends", t.benchmark_backends,
                 "Backends to time, comma-separated (default: cuda,cublas with a GPU, else cpu)")
      ->type_name("NAME,...")
      ->allow_extra_args(false);
  app.add_option("--benchmark_precisions", t.benchmark_precisions,
                 "Precisions of the GPU step table, comma-separated (default: fp32,tf32,bf16 on "
                 "GPUs of compute capability 8.0 or newer, else fp32); CPU rows are fp32")
      ->type_name("NAME,...")
      ->allow_extra_args(false);
  app.add_option(
         "--benchmark_steps", t.benchmark_steps,
         "Timed steps per configuration (after 20 warm-up steps)" + in(1, kMaxBenchmarkSteps))
      ->type_name("INT")
      ->capture_default_str();
  app.add_option("--benchmark_out", o.benchmark_out, "Also write the results as JSON to this file");
  app.set_version_flag("--version", std::string("mnist-train ") + MNIST_VERSION);
}

bool is_mirror_url(const std::string& url) {
  for (const char* scheme : {"http://", "https://", "file://"}) {
    const std::size_t n = std::char_traits<char>::length(scheme);
    if (url.size() > n && std::equal(scheme, scheme + n, url.begin(), [](char a, char b) {
          return a == std::tolower(static_cast<unsigned char>(b));
        }))
      return true;
  }
  return false;
}

// The texts CLI11 collected, converted and range-checked; and the checks of the flags CLI11 stored
// directly.
void convert(const FlagTexts& t, Options& o) {
  o.max_steps =
      static_cast<int>(whole_number<std::int64_t>("--max_steps", t.max_steps, 0, kMaxIterations));
  o.learning_rate = static_cast<float>(
      real_number("--learning_rate", t.learning_rate, kMinLearningRate, kMaxLearningRate));
  o.dropout_keep = static_cast<float>(real_number("--dropout", t.dropout, kMinKeep, 1.0));
  o.hidden_units = whole_number("--hidden_units", t.hidden_units, 1, kMaxHiddenUnits);
  o.batch_size = whole_number("--batch_size", t.batch_size, 1, kMaxBatch);
  o.eval_every =
      static_cast<int>(whole_number<std::int64_t>("--eval_every", t.eval_every, 1, kMaxIterations));
  o.summary_every = static_cast<int>(
      whole_number<std::int64_t>("--summary_every", t.summary_every, 1, kMaxIterations));
  o.seed =
      whole_number("--seed", t.seed, std::uint64_t{0}, std::numeric_limits<std::uint64_t>::max());
  o.download_timeout_s =
      real_number("--download_timeout", t.download_timeout, kMinTimeout, kMaxTimeout);
  o.download_attempts = whole_number("--download_attempts", t.download_attempts, 1, kMaxAttempts);
  o.benchmark_steps = whole_number("--benchmark_steps", t.benchmark_steps, 1, kMaxBenchmarkSteps);
  o.min_accuracy =
      t.min_accuracy == "auto" ? -1.0 : real_number("--min_accuracy", t.min_accuracy, 0.0, 1.0);
  o.min_speed_ratio = real_number("--min_speed_ratio", t.min_speed_ratio, 0.0, 1.0);
  o.min_sibling_ratio = real_number("--min_sibling_ratio", t.min_sibling_ratio, 0.0, 1.0);
  o.stall_timeout_s = real_number("--stall_timeout_s", t.stall_timeout, 0.0, 86400.0);

  o.backend = *value_in(kBackendNames, one_of("--backend", t.backend, names_in(kBackendNames)));
  o.model = *value_in(kModelNames, one_of("--model", t.model, names_in(kModelNames)));
  o.cuda_graphs = one_of("--cuda_graphs", t.cuda_graphs, {"on", "off"}) == "on";
  o.precision =
      *value_in(kPrecisionNames, one_of("--precision", t.precision, names_in(kPrecisionNames)));
  if (o.backend == BackendKind::kCpu && o.precision != Precision::kFp32)
    refuse("--precision " + t.precision + " with --backend cpu: the CPU reference is fp32 only");
  o.step_kernel = *value_in(kStepKernelNames,
                            one_of("--step_kernel", t.step_kernel, names_in(kStepKernelNames)));
  if (o.benchmark && o.step_kernel != StepKernel::kAuto)
    refuse(
        "--step_kernel " + t.step_kernel +
        " with --benchmark: it times the fused and the tiled step side by side where both apply");
  if (o.step_kernel == StepKernel::kFused) {
    const auto why = [&](const std::string& reason) {
      refuse("--step_kernel fused " + reason + " (--step_kernel auto picks what applies)");
    };
    if (o.backend == BackendKind::kCpu || o.backend == BackendKind::kCublas)
      why("is the cuda backend's, not --backend " + t.backend + "'s");
    if (o.model != ModelKind::kMlp) why("runs the mlp, not --model " + t.model);
    if (o.precision != Precision::kFp32) why("is fp32, not --precision " + t.precision);
    if (o.batch_size > kFusedMaxBatch)
      why("takes batches of up to " + std::to_string(kFusedMaxBatch) + " rows, not --batch_size " +
          std::to_string(o.batch_size));
  }
  one_of("--dataset", o.dataset, {"mnist", "fashion-mnist"});

  o.benchmark_batches.clear();
  for (const std::string& item : comma_items("--benchmark_batches", t.benchmark_batches))
    o.benchmark_batches.push_back(whole_number("--benchmark_batches", item, 1, kMaxBatch));
  for (const std::string& item : comma_items("--benchmark_precisions", t.benchmark_precisions)) {
    const std::string name = one_of("--benchmark_precisions", item, names_in(kPrecisionNames));
    const Precision p = *value_in(kPrecisionNames, name);
    if (std::find(o.benchmark_precisions.begin(), o.benchmark_precisions.end(), p) !=
        o.benchmark_precisions.end())
      refuse("--benchmark_precisions", item, "listed twice");
    o.benchmark_precisions.push_back(p);
  }
  for (const std::string& item : comma_items("--benchmark_backends", t.benchmark_backends)) {
    const std::string name = one_of("--benchmark_backends", item, concrete_backend_names());
    o.benchmark_backends.push_back(*value_in(kBackendNames, name));
  }

  o.gpus = gpu_selection(t.gpus);
  o.world_size = whole_number("--world_size", t.world_size, 1, kMaxWorldSize);
  o.rendezvous_timeout_s = real_number("--rendezvous_timeout", t.rendezvous_timeout,
                                       kMinRendezvousTimeout, kMaxRendezvousTimeout);
  if (o.world_size > 1) {
    if (o.rendezvous.empty())
      refuse("--world_size " + std::to_string(o.world_size) + " needs --rendezvous HOST:PORT");
    if (o.backend == BackendKind::kCpu || o.backend == BackendKind::kCublas)
      refuse("--world_size > 1 trains data-parallel with --backend cuda (or auto)");
    if (o.benchmark) refuse("--world_size > 1 with --benchmark: the benchmark runs in one process");
    if (o.rendezvous_secret_file.empty()) {
      refuse("--world_size " + std::to_string(o.world_size) +
             " needs --rendezvous_secret_file PATH: the Job's shared secret, so that only its own "
             "processes can join (docs/KUBERNETES.md: \"Training on several nodes\")");
    }
    try {
      read_rendezvous_secret(o.rendezvous_secret_file);  // read again at the rendezvous
    } catch (const Error& e) {
      refuse(e.what());
    }
  }
  if (!o.rendezvous.empty()) {
    for (const char c : o.rendezvous) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
        refuse("--rendezvous holds a control character (a HOST:PORT has none)");
    }
    try {
      parse_endpoint(o.rendezvous);
    } catch (const Error& e) {
      refuse("--rendezvous", o.rendezvous, e.what());
    }
  }
  const bool several_gpus_named = (o.gpus.kind == GpuSelection::Kind::kFirst && o.gpus.first > 1) ||
                                  o.gpus.kind == GpuSelection::Kind::kList;
  if (o.step_kernel == StepKernel::kFused && (o.world_size > 1 || several_gpus_named)) {
    refuse("--step_kernel fused trains on one GPU, not --gpus " + o.gpus.text + " --world_size " +
           std::to_string(o.world_size) + " (data-parallel replicas step tiled)");
  }
  if (o.backend == BackendKind::kCpu && o.gpus.kind != GpuSelection::Kind::kAll)
    refuse("--gpus " + shown(o.gpus.text) + " with --backend cpu: the CPU backend uses no GPU");
  if (o.benchmark && o.gpus.kind != GpuSelection::Kind::kAll) {
    refuse("--gpus " + shown(o.gpus.text) +
           " with --benchmark: it times one GPU, and scales over every visible one (choose them "
           "with CUDA_VISIBLE_DEVICES)");
  }
  // Every GPU of the world needs a row of the global batch.
  const long long gpus_here = o.gpus.kind == GpuSelection::Kind::kFirst ? o.gpus.first
                              : o.gpus.kind == GpuSelection::Kind::kList
                                  ? static_cast<long long>(o.gpus.list.size())
                                  : 1;
  if (o.backend != BackendKind::kCpu && gpus_here * o.world_size > o.batch_size) {
    refuse("--batch_size " + std::to_string(o.batch_size) + " cannot be split over " +
           std::to_string(gpus_here * o.world_size) + " GPUs (--gpus " + o.gpus.text +
           ", --world_size " + std::to_string(o.world_size) + "): each needs at least one row");
  }

  // The textfile collector reads only *.prom files: any other name would be written and never read.
  const std::string metrics_name = std::filesystem::path(o.metrics_file).filename().string();
  const std::string prom = ".prom";
  if (!o.metrics_file.empty() &&
      (metrics_name.size() <= prom.size() ||
       metrics_name.compare(metrics_name.size() - prom.size(), prom.size(), prom) != 0))
    refuse("--metrics_file", o.metrics_file,
           "not a NAME.prom file (the node exporter's textfile collector reads only those)");
  if (o.data_dir.empty()) refuse("--data_dir must not be empty");
  for (const std::string& mirror : o.mirrors) {
    if (!is_mirror_url(mirror))
      refuse("--mirror", mirror, "not an http://, https:// or file:// URL");
  }
  checkpoint_cadence(o.checkpoint_every);
}

}  // namespace

std::optional<Options> parse_command_line(int argc, const char* const* argv) {
  Options o;
  FlagTexts texts = defaults_of(o);
  CLI::App app{
      "mnist-train: trains an MNIST classifier with hand-written CUDA kernels and logs test "
      "accuracy.\nA drop-in replacement for the TensorFlow mnist_with_summaries.py demo image: "
      "same flags, defaults and log lines.",
      "mnist-train"};
  app.get_formatter()->column_width(34);
  add_flags(app, o, texts);

  try {
    app.parse(tokens_for_cli11(app, argc, argv));
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return std::nullopt;
  } catch (const CLI::CallForVersion& e) {
    std::cout << e.what() << std::endl;
    return std::nullopt;
  } catch (const CLI::Error& e) {  // whatever CLI11 refuses is a bad command line, never a bug
    refuse(e.what());
  }
  convert(texts, o);
  return o;
}

// The run's flags as a Markdown table: the text summary TensorBoard shows under "flags".
std::string flags_markdown(const Options& o) {
  const std::pair<const char*, std::string> rows[] = {
      {"max_steps", std::to_string(o.max_steps)},
      {"learning_rate", readable(o.learning_rate)},
      {"dropout", readable(o.dropout_keep)},
      {"data_dir", o.data_dir},
      {"log_dir", o.log_dir},
      {"fake_data", o.fake_data ? "true" : "false"},
      {"backend", backend_name(o.backend)},
      {"model", model_name(o.model)},
      {"hidden_units", std::to_string(o.hidden_units)},
      {"batch_size", std::to_string(o.batch_size)},
      {"eval_every", std::to_string(o.eval_every)},
      {"summary_every", std::to_string(o.summary_every)},
      {"seed", std::to_string(o.seed)},
      {"dataset", o.dataset},
      {"checkpoint_dir", o.checkpoint_dir},
      {"checkpoint_every", o.checkpoint_every},
      {"cuda_graphs", o.cuda_graphs ? "on" : "off"},
      {"precision", precision_name(o.precision)},
      {"step_kernel", step_kernel_name(o.step_kernel)},
      {"gpus", o.gpus.text},
      {"world_size", std::to_string(o.world_size)}};
  std::string text = "| flag | value |\n|---|---|\n";
  for (const auto& [name, value] : rows) {
    std::string cell;  // a | or a line break in a path must not break the table
    for (char c : value)
      cell += c == '|' ? std::string("\\|") : c == '\n' ? std::string(" ") : std::string(1, c);
    text += "| --" + std::string(name) + " | `" + cell + "` |\n";
  }
  return text;
}

RunConfig run_config(const Options& o) {
  RunConfig run;
  run.train.model = o.model;
  run.train.hidden_units = o.hidden_units;
  run.train.batch_size = o.batch_size;
  run.train.learning_rate = o.learning_rate;
  run.train.keep_prob = o.model == ModelKind::kMlp ? o.dropout_keep : 1.0f;
  run.train.seed = o.seed;
  run.train.cuda_graphs = o.cuda_graphs;
  run.train.precision = o.precision;
  run.train.step_kernel = o.step_kernel;
  run.max_steps = o.max_steps;
  run.eval_every = o.eval_every;
  run.log_dir = o.log_dir;
  run.summary_every = o.summary_every;
  run.flags_text = flags_markdown(o);
  run.checkpoint_dir = o.checkpoint_dir;
  const Cadence cadence = checkpoint_cadence(o.checkpoint_every);
  run.checkpoint_every_steps = cadence.steps;
  run.checkpoint_every_seconds = cadence.seconds;
  run.dataset = o.dataset;
  run.fake_data = o.fake_data;
  return run;
}

double accuracy_floor(const Options& o) {
  if (o.min_accuracy >= 0) return o.min_accuracy;
  const bool seed_like = !o.fake_data && o.dataset == "mnist" && o.max_steps >= 500;
  return seed_like ? kSeedAccuracyFloor : 0.0;
}

DataSource data_source(const Options& o) {
  DataSource source;
  source.dataset = o.dataset;
  source.data_dir = o.data_dir;
  source.mirror_flags = o.mirrors;
  source.timeout_s = o.download_timeout_s;
  source.attempts = o.download_attempts;
  source.show_progress = isatty(STDERR_FILENO) != 0;
  return source;
}

}  // namespace mnist
