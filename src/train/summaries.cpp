#include "train/summaries.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "data/fileio.h"
#include "error.h"
#include "kernels/common/sample_stream.h"
#include "stop.h"
#include "summary/event_writer.h"
#include "summary/png.h"
#include "train/epochs.h"

namespace mnist {

namespace fs = std::filesystem;

namespace {

constexpr int kImagesShown = 10;            // the sample's tf.summary.image(..., 10)
constexpr std::size_t kMaxQueuedJobs = 64;  // then the loop waits for the writer

// The sample's tags (mnist_with_summaries.py): variable_summaries under L/T/summaries/.
void add_variable_summaries(SummaryBuilder& summary, const std::string& name, const Histogram& h) {
  const std::string base = name + "/summaries/";
  const double mean = h.num > 0 ? h.sum / h.num : 0.0;
  const double variance = h.num > 0 ? std::max(0.0, h.sum_squares / h.num - mean * mean) : 0.0;
  summary.scalar(base + "mean", static_cast<float>(mean))
      .scalar(base + "stddev", static_cast<float>(std::sqrt(variance)))
      .scalar(base + "max", static_cast<float>(h.max))
      .scalar(base + "min", static_cast<float>(h.min))
      .histogram(base + "histogram", h);
}

bool is_variable(const std::string& name) {
  return name.size() > 8 && (name.compare(name.size() - 8, 8, "/weights") == 0 ||
                             name.compare(name.size() - 7, 7, "/biases") == 0);
}

// Ten images as the sample's input_reshape/input/image/N values (28x28 grey PNG).
void add_images(SummaryBuilder& summary, const Dataset& set, const std::vector<int>& indices) {
  for (std::size_t n = 0; n < indices.size(); ++n) {
    const std::uint8_t* pixels = set.images.data() + std::size_t(indices[n]) * kImagePixels;
    summary.image("input_reshape/input/image/" + std::to_string(n),
                  encode_png(pixels, kImageSide, kImageSide), kImageSide, kImageSide, 1);
  }
}

// The Chrome trace of one step (the JSON Object Format of the Trace Event Format, which Perfetto
// and chrome://tracing open): one complete ("X") event per op and per kernel, microseconds from
// the start of the step; lane 0 is the main stream, lane 1 the side stream.
std::string chrome_trace(const std::string& backend, std::int64_t iteration,
                         const std::vector<TracedOp>& ops) {
  nlohmann::json events = nlohmann::json::array();
  events.push_back(
      {{"name", "process_name"},
       {"ph", "M"},
       {"pid", 1},
       {"tid", 0},
       {"args", {{"name", "mnist-train " + backend + " step " + std::to_string(iteration)}}}});
  const bool gpu = backend != "cpu";
  for (int lane = 0; lane < (gpu ? 2 : 1); ++lane) {
    events.push_back(
        {{"name", "thread_name"},
         {"ph", "M"},
         {"pid", 1},
         {"tid", lane},
         {"args", {{"name", gpu ? (lane ? "side stream" : "main stream") : "host thread"}}}});
  }
  // In time order (the two streams' ops were enqueued interleaved); an op before the kernels it
  // encloses when they start together.
  std::vector<TracedOp> sorted = ops;
  std::stable_sort(sorted.begin(), sorted.end(), [](const TracedOp& a, const TracedOp& b) {
    if (a.start_us != b.start_us) return a.start_us < b.start_us;
    return a.duration_us > b.duration_us;
  });
  for (const TracedOp& op : sorted) {
    events.push_back({{"name", op.name},
                      {"cat", op.kernel ? "kernel" : "op"},
                      {"ph", "X"},
                      {"ts", op.start_us},
                      {"dur", op.duration_us},
                      {"pid", 1},
                      {"tid", op.lane},
                      {"args", {{"step", iteration}}}});
  }
  const nlohmann::json trace = {
      {"traceEvents", events},
      {"displayTimeUnit", "ns"},
      {"otherData",
       {{"backend", backend},
        {"iteration", iteration},
        {"timing",
         gpu ? "the step enqueued op by op (no graph), timed with CUDA events" : "host clock"}}}};
  return trace.dump(1);
}

}  // namespace

// The event files; only the writer thread touches them once the constructor has made them.
struct RunSummaries::Writers {
  EventWriter train, test, validation;
};

RunSummaries::RunSummaries(const RunConfig& run, const MnistData& data, Backend& backend,
                           std::int64_t first_iteration)
    : run_(run), data_(data), backend_(backend) {
  if (run.log_dir.empty()) return;
  // The log folder is checked once (writable, no foreign links on its path); its subfolders are
  // made in it, and a file that cannot be created there fails the run by itself (EventWriter).
  ensure_writable_directory(run.log_dir, "--log_dir", ExitCode::kOutputFailed);
  auto folder = [&](const char* name) {
    const std::string dir = (fs::path(run.log_dir) / name).string();
    std::error_code ec;
    fs::create_directory(dir, ec);
    if (ec || !fs::is_directory(fs::symlink_status(dir)))
      throw Error(ExitCode::kOutputFailed,
                  dir + ": cannot create the folder (--log_dir)" +
                      (ec ? ": " + ec.message() : ": something else is there"));
    return dir;
  };
  // Every folder first, then the files: a folder that cannot be made leaves no file behind.
  const std::string train = folder("train"), test = folder("test"),
                    validation = folder("validation");
  traces_dir_ = folder("traces");
  writers_.reset(new Writers{EventWriter(train), EventWriter(test), EventWriter(validation)});
  tensor_names_ = summary_tensor_names(make_layout(run.train.model, run.train.hidden_units));
  steps_from_ = process_first_step_ = backend.steps_taken();
  backend.enable_step_metrics();
  enabled_ = true;
  if (!run.flags_text.empty()) {
    const std::string text = run.flags_text;
    const double now = wall_clock_seconds();
    queue([text, first_iteration, now](Writers& w) {
      w.train.write(first_iteration, SummaryBuilder().text("flags", text), now);
    });
  }
  worker_ = std::thread([this] { work(); });
}

RunSummaries::~RunSummaries() {
  if (!worker_.joinable()) return;
  // An exception or a stop request is unwinding the loop: keep what the backend measured since
  // the last evaluation too, if it can still be read.
  if (!finished_) {
    try {
      take_from_backend();
    } catch (...) {
    }
  }
  stop_writer();
}

void RunSummaries::stop_writer() {
  std::unique_lock<std::mutex> lock(mutex_);
  closing_ = true;
  changed_.notify_all();
  if (stop_requested()) {
    // Stopping (Kubernetes sends SIGKILL after the grace period): a slow or hung log volume
    // gets a couple of seconds, then what is still queued is dropped.
    changed_.wait_for(lock, std::chrono::seconds(2), [&] { return jobs_.empty(); });
    jobs_.clear();
  }
  lock.unlock();
  worker_.join();
}

void RunSummaries::before_step(std::int64_t iteration) {
  if (!enabled_) return;
  if (failed_.load(std::memory_order_relaxed)) rethrow_failure();  // a dead log disk, found early
  const std::int64_t step = backend_.steps_taken();
  if ((step - process_first_step_) % run_.summary_every == 0) backend_.record_statistics();
  iterations_.push_back(iteration);
  wall_times_.push_back(wall_clock_seconds());
}

void RunSummaries::take_from_backend() {
  Summaries taken = backend_.take_summaries();
  const std::vector<std::int64_t> iterations = std::move(iterations_);
  const std::vector<double> wall_times = std::move(wall_times_);
  const std::int64_t from = steps_from_;
  iterations_.clear();
  wall_times_.clear();
  steps_from_ = backend_.steps_taken();
  auto iteration_of = [iterations, from](std::int64_t step) {
    const std::int64_t k = step - from;
    if (k < 0 || k >= static_cast<std::int64_t>(iterations.size()))
      throw Error(ExitCode::kInternal, "summaries: step " + std::to_string(step) + " unknown");
    return iterations[static_cast<std::size_t>(k)];
  };
  // Resolved here, on the loop's thread (a bug surfaces where it is made).
  // Each event carries the wall time its step was started at, not when it is written.
  auto wall_time_of = [&](std::int64_t step) {
    return wall_times[static_cast<std::size_t>(step - from)];
  };
  std::vector<std::int64_t> metric_iterations, stats_iterations;
  std::vector<double> metric_times, stats_times;
  std::vector<std::vector<int>> images;
  for (const StepMetrics& m : taken.steps) {
    metric_iterations.push_back(iteration_of(m.step));
    metric_times.push_back(wall_time_of(m.step));
  }
  for (const StepStatistics& s : taken.statistics) {
    stats_iterations.push_back(iteration_of(s.step));
    stats_times.push_back(wall_time_of(s.step));
    std::vector<int> batch_images;  // the first images of that step's batch
    for (int r = 0; r < std::min(kImagesShown, run_.train.batch_size); ++r) {
      const StreamPosition pos =
          stream_position(s.step, run_.train.batch_size, r, data_.train.count);
      if (pos.epoch != cached_epoch_) {
        cached_order_ = epoch_order(run_.train.seed, pos.epoch, data_.train.count);
        cached_epoch_ = pos.epoch;
      }
      batch_images.push_back(cached_order_[pos.index]);
    }
    images.push_back(std::move(batch_images));
  }
  // Traced steps (the sample's "Adding run metadata"): log_dir/traces/step_<i>.trace.json.
  for (const StepTrace& trace : taken.traces) {
    const std::int64_t iteration = iteration_of(trace.step);
    const std::string path =
        (fs::path(traces_dir_) / ("step_" + std::to_string(iteration) + ".trace.json")).string();
    queue([path, backend = backend_.name(), iteration, ops = trace.ops](Writers&) {
      const std::string json = chrome_trace(backend, iteration, ops);
      // A trace is cheap to lose: no fsync (which can take milliseconds), like the event files.
      write_file_atomically(path, std::vector<std::uint8_t>(json.begin(), json.end()),
                            ExitCode::kOutputFailed, /*durable=*/false);
    });
  }
  if (taken.steps.empty() && taken.statistics.empty()) return;
  const float keep = run_.train.keep_prob, lr = run_.train.learning_rate;
  queue([this, taken = std::move(taken), metric_iterations, stats_iterations, metric_times,
         stats_times, images, keep, lr](Writers& w) {
    auto write_statistics = [&](std::size_t n) {
      const StepStatistics& stats = taken.statistics[n];
      SummaryBuilder summary;
      summary.scalar("dropout/dropout_keep_probability", keep).scalar("learning_rate", lr);
      for (std::size_t t = 0; t < stats.tensors.size() && t < tensor_names_.size(); ++t) {
        if (is_variable(tensor_names_[t]))
          add_variable_summaries(summary, tensor_names_[t], stats.tensors[t]);
        else
          summary.histogram(tensor_names_[t], stats.tensors[t]);
      }
      add_images(summary, data_.train, images[n]);
      w.train.write(stats_iterations[n], summary, stats_times[n]);
    };
    // In step order: a step's statistics (taken before it ran) first, then its scalars.
    std::size_t next_stats = 0;
    for (std::size_t n = 0; n < taken.steps.size(); ++n) {
      while (next_stats < taken.statistics.size() &&
             taken.statistics[next_stats].step <= taken.steps[n].step)
        write_statistics(next_stats++);
      SummaryBuilder summary;
      summary.scalar("cross_entropy", taken.steps[n].cross_entropy)
          .scalar("accuracy", taken.steps[n].accuracy);
      w.train.write(metric_iterations[n], summary, metric_times[n]);
    }
    while (next_stats < taken.statistics.size()) write_statistics(next_stats++);
  });
}

bool RunSummaries::validation_due(std::int64_t iteration) const {
  return enabled_ && data_.validation.count > 0 &&
         (first_evaluation_ ||
          iteration % (std::int64_t(run_.eval_every) * run_.summary_every) == 0);
}

void RunSummaries::evaluated(std::int64_t iteration, const Evaluation& test,
                             const std::optional<Evaluation>& validation,
                             double images_per_second) {
  if (!enabled_) return;
  take_from_backend();
  const bool first = first_evaluation_;
  first_evaluation_ = false;
  const double test_accuracy = data_.test.count ? double(test.correct) / data_.test.count : 0.0;
  const double validation_accuracy =
      validation ? double(validation->correct) / data_.validation.count : 0.0;
  const double now = wall_clock_seconds();  // the events' time: this evaluation's, not the write's
  queue([this, iteration, test, validation, test_accuracy, validation_accuracy, first,
         images_per_second, now](Writers& w) {
    SummaryBuilder t;
    t.scalar("cross_entropy", test.cross_entropy)
        .scalar("accuracy", static_cast<float>(test_accuracy))
        .scalar("dropout/dropout_keep_probability", 1.0f);
    if (first) {
      std::vector<int> shown;
      for (int n = 0; n < std::min(kImagesShown, data_.test.count); ++n) shown.push_back(n);
      add_images(t, data_.test, shown);
    }
    w.test.write(iteration, t, now);
    if (validation) {
      SummaryBuilder v;
      v.scalar("cross_entropy", validation->cross_entropy)
          .scalar("accuracy", static_cast<float>(validation_accuracy));
      w.validation.write(iteration, v, now);
    }
    if (images_per_second > 0) {
      SummaryBuilder rate;
      rate.scalar("images_per_second", static_cast<float>(images_per_second));
      w.train.write(iteration, rate, now);
    }
  });
}

void RunSummaries::finish() {
  if (!enabled_ || finished_) return;
  finished_ = true;
  take_from_backend();
  if (worker_.joinable()) stop_writer();
  rethrow_failure();
}

void RunSummaries::queue(Job job) {
  std::unique_lock<std::mutex> lock(mutex_);
  // The writer is behind (a slow disk): wait for room, but never past a stop request.
  while (jobs_.size() >= kMaxQueuedJobs && !failed_ && !closing_) {
    if (stop_requested()) return;  // dropped: the loop stops at its next step
    changed_.wait_for(lock, std::chrono::milliseconds(100));
  }
  if (failed_) {
    lock.unlock();
    rethrow_failure();
  }
  if (closing_) return;  // finishing: nothing more is written
  jobs_.push_back(std::move(job));
  lock.unlock();
  changed_.notify_all();
}

void RunSummaries::work() {
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      changed_.wait(lock, [&] { return !jobs_.empty() || closing_; });
      if (jobs_.empty()) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    changed_.notify_all();
    try {
      job(*writers_);
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> lock(mutex_);
      failure_ = *e.what() ? e.what() : "unknown error";
      failed_ = true;
      jobs_.clear();
      closing_ = true;
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      failure_ = "unknown error";
      failed_ = true;
      jobs_.clear();
      closing_ = true;
    }
    changed_.notify_all();
  }
}

void RunSummaries::rethrow_failure() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (failed_) throw Error(ExitCode::kOutputFailed, "cannot write the summaries: " + failure_);
}

}  // namespace mnist

namespace mnist {

std::vector<std::string> summary_tensor_names(const ModelLayout& layout) {
  std::vector<std::string> names;
  const auto layer = [](std::size_t l) { return "layer" + std::to_string(l + 1); };
  for (std::size_t l = 0; l < layout.layers.size(); ++l) {
    names.push_back(layer(l) + "/weights");
    names.push_back(layer(l) + "/biases");
  }
  for (std::size_t l = 0; l < layout.layers.size(); ++l) {
    names.push_back(layer(l) + "/Wx_plus_b/pre_activations");
    names.push_back(layer(l) + "/activations");
  }
  return names;
}

}  // namespace mnist
