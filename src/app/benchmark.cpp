#include "app/benchmark.h"

#include <stdlib.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "app/backends.h"
#include "app/report.h"
#include "data/fileio.h"
#include "error.h"
#include "gpu/cuda_resources.h"
#include "gpu/data_parallel.h"
#include "gpu/device.h"
#include "gpu/event_stopwatch.h"
#include "gpu/vendor.h"
#include "kernels/baseline/adam.h"
#include "kernels/gemm.h"
#include "kernels/tensor_stats.h"
#include "stop.h"
#include "train/epochs.h"
#include "train/loop.h"
#include "watchdog.h"

namespace mnist {

TimingSummary summarise_timings(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  if (v.empty()) return {};
  const std::size_t n = v.size();
  const double median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  return {v.front(), median, v[(9 * n + 9) / 10 - 1]};  // nearest rank: the ceil(0.9 n)-th
}

namespace {

using json = nlohmann::ordered_json;

// The timed spans of a stopwatch marked before and after each piece of work (mark, work, mark,
// ...): every other interval, in µs.
std::vector<double> bracketed_us(Stopwatch& watch) {
  const auto intervals = watch.intervals_us();
  std::vector<double> spans;
  for (std::size_t i = 0; i < intervals.size(); i += 2) spans.push_back(intervals[i]);
  return spans;
}

// A fresh backend for `batch`, configured from the flags like any run.
std::unique_ptr<Backend> fresh_backend(const Options& o, BackendKind kind, int batch,
                                       const MnistData& data) {
  TrainConfig config = run_config(o).train;
  config.batch_size = batch;
  return make_backend(kind, config, data);
}

json time_steps(const Options& o, BackendKind kind, int batch, Precision precision,
                const MnistData& data, StepKernel step_kernel = StepKernel::kAuto) {
  const bool cpu = kind == BackendKind::kCpu;
  const int warmup = cpu ? 2 : 20;
  const int steps = cpu ? std::min(o.benchmark_steps, 20) : o.benchmark_steps;
  TrainConfig config = run_config(o).train;
  config.batch_size = batch;
  config.precision = precision;
  config.step_kernel = step_kernel;
  auto backend = make_backend(kind, config, data);
  EpochFeeder feed(*backend, o.seed, batch, data.train.count);
  for (int i = 0; i < warmup; ++i) {
    feed.before_step();
    heartbeat("benchmark");  // each timed step is progress (watchdog.h)
    backend->train_step();
  }
  backend->synchronize();
  auto watch = backend->stopwatch();
  for (int i = 0; i < steps; ++i) {
    throw_if_stop_requested("during --benchmark");
    feed.before_step();      // may copy an epoch order: kept outside the timed pairs
    heartbeat("benchmark");  // outside the timed span
    watch->mark();
    backend->train_step();
    watch->mark();
  }
  const TimingSummary s = summarise_timings(bracketed_us(*watch));
  return {{"backend", backend_name(kind)},
          {"device", cpu ? "CPU" : "GPU"},
          {"precision", precision_name(precision)},
          {"step_kernel", backend->step_kernel().empty() ? "-" : backend->step_kernel()},
          {"batch", batch},
          {"steps", steps},
          {"min_us", s.min},
          {"median_us", s.median},
          {"p90_us", s.p90},
          {"images_per_s", batch / s.median * 1e6},
          {"final_loss", backend->last_loss()}};
}

// One full-test evaluation (forward over the 10,000 test images and the count of correct ones,
// copied back), timed alone on device events after a few training steps and warm-up evaluations.
json time_evaluation(const Options& o, BackendKind kind, Precision precision,
                     const MnistData& data) {
  const bool cpu = kind == BackendKind::kCpu;
  TrainConfig config = run_config(o).train;
  config.batch_size = 100;
  config.precision = precision;
  auto backend = make_backend(kind, config, data);
  EpochFeeder feed(*backend, o.seed, config.batch_size, data.train.count);
  for (int i = 0; i < 10; ++i) {
    feed.before_step();
    heartbeat("benchmark");
    backend->train_step();
  }
  for (int i = 0; i < (cpu ? 0 : 3); ++i) backend->evaluate_test();
  backend->synchronize();
  auto watch = backend->stopwatch();
  const int repeats = cpu ? 3 : 30;
  int correct = 0;
  for (int i = 0; i < repeats; ++i) {
    throw_if_stop_requested("during --benchmark");
    heartbeat("benchmark");  // outside the timed span
    watch->mark();
    correct = backend->evaluate_test();
    watch->mark();
  }
  const TimingSummary s = summarise_timings(bracketed_us(*watch));
  return {{"backend", backend_name(kind)},
          {"precision", precision_name(precision)},
          {"images", data.test.count},
          {"repeats", repeats},
          {"min_us", s.min},
          {"median_us", s.median},
          {"p90_us", s.p90},
          {"images_per_s", data.test.count / s.median * 1e6},
          {"accuracy", double(correct) / data.test.count}};
}

// Data-parallel scaling within this process: images/s over the first n GPUs (1, 2, 4, ... and all)
// at `per_gpu` rows per GPU (global batch n * per_gpu), the efficiency against one GPU, and the
// gradient's all-reduce over those n GPUs.
json data_parallel_scaling(const Options& o, int gpus, int per_gpu, const MnistData& data,
                           double& one_gpu_images_per_s) {
  TrainConfig config = run_config(o).train;
  config.batch_size = per_gpu * gpus;
  std::vector<int> devices;
  for (int d = 0; d < gpus; ++d) devices.push_back(d);
  NcclWorld world;
  world.id = new_nccl_id();
  world.ranks = gpus;
  world.timeout = std::chrono::seconds(120);
  DataParallelBackend backend(
      config, data, initial_parameters(make_layout(config.model, config.hidden_units), o.seed),
      devices, world);
  const AllReduceFigure f = backend.measure_all_reduce(50);
  EpochFeeder feed(backend, o.seed, config.batch_size, data.train.count);
  for (int i = 0; i < 20; ++i) {
    feed.before_step();
    heartbeat("benchmark");
    backend.train_step();
  }
  backend.synchronize();
  auto watch = backend.stopwatch();
  const int steps = std::max(o.benchmark_steps / 2, 10);
  for (int i = 0; i < steps; ++i) {
    throw_if_stop_requested("during --benchmark");
    feed.before_step();
    heartbeat("benchmark");  // outside the timed span
    watch->mark();
    backend.train_step();
    watch->mark();
  }
  const TimingSummary s = summarise_timings(bracketed_us(*watch));
  const double images_per_s = config.batch_size / s.median * 1e6;
  if (gpus == 1) one_gpu_images_per_s = images_per_s;
  const double efficiency =
      one_gpu_images_per_s > 0 ? images_per_s / (gpus * one_gpu_images_per_s) : 0.0;
  return {{"gpus", gpus},
          {"batch_per_gpu", per_gpu},
          {"global_batch", config.batch_size},
          {"median_step_us", s.median},
          {"images_per_s", images_per_s},
          {"scaling_efficiency", efficiency},
          {"all_reduce_bytes", f.bytes},
          {"all_reduce_us", f.latency_us},
          {"all_reduce_bus_gbps", f.bus_gbps}};
}

// A fresh folder under the system's temporary folder (TMPDIR, else /tmp), made by mkdtemp (mode
// 0700, a name nobody else can have taken), removed with everything in it when this goes.
class TemporaryFolder {
 public:
  // Throws Error(kOutputFailed) saying why the folder cannot be made.
  TemporaryFolder() {
    std::error_code ec;
    const std::filesystem::path base = std::filesystem::temp_directory_path(ec);
    if (ec) throw Error(ExitCode::kOutputFailed, "no temporary folder (TMPDIR): " + ec.message());
    std::string name = (base / "mnist-train-benchmark-XXXXXX").string();
    if (::mkdtemp(name.data()) == nullptr) {
      throw Error(ExitCode::kOutputFailed,
                  "cannot make a folder in " + base.string() + ": " + std::strerror(errno));
    }
    path_ = name;
  }
  ~TemporaryFolder() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);  // links inside are removed, never followed
  }
  TemporaryFolder(const TemporaryFolder&) = delete;
  TemporaryFolder& operator=(const TemporaryFolder&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// One run of `job` on a fresh backend; the loop's wall time in ms (building the backend is not
// timed).
double time_job(const RunConfig& job, BackendKind kind, const MnistData& data, double& accuracy) {
  auto backend = make_backend(kind, job.train, data);
  std::ostringstream sink;
  const auto t0 = std::chrono::steady_clock::now();
  const TrainResult r = run_training_loop(job, *backend, data, ResumePoint{}, sink);
  accuracy = r.final_accuracy;
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// The sample's job: 500 iterations, 50 full-test evaluations, batch 100. On a GPU one warm-up run
// (module load, graph capture), then the median of five timed runs; on the CPU, which has nothing
// to load or capture and takes seconds per run, one timed run. With `summaries_root`, each run is
// followed by one with summaries on (the flags' --summary_every, a fresh --log_dir under
// summaries_root), timed the same way: both see the same warm-up and drift, and their ratio is what
// summaries cost.
json seed_job(const Options& o, BackendKind kind, const MnistData& data,
              const std::string& summaries_root) {
  RunConfig job = run_config(o);
  job.max_steps = 500;
  job.train.batch_size = 100;
  job.log_dir.clear();
  job.checkpoint_dir.clear();
  const bool cpu = kind == BackendKind::kCpu;
  const int warmups = cpu ? 0 : 1, repeats = cpu ? 1 : 5;
  std::vector<double> plain, with_summaries;
  double accuracy = 0, accuracy_with_summaries = 0;
  for (int run = 0; run < warmups + repeats; ++run) {
    throw_if_stop_requested("during --benchmark");
    const double ms = time_job(job, kind, data, accuracy);
    if (run >= warmups) plain.push_back(ms);
    if (summaries_root.empty()) continue;
    RunConfig logged = job;
    logged.log_dir = summaries_root + "/" + backend_name(kind) + "-" + std::to_string(run);
    ensure_writable_directory(logged.log_dir, "--benchmark's temporary --log_dir",
                              ExitCode::kOutputFailed);
    const double ms_logged = time_job(logged, kind, data, accuracy_with_summaries);
    if (run >= warmups) with_summaries.push_back(ms_logged);
  }
  json r = {{"backend", backend_name(kind)},
            {"ms", summarise_timings(plain).median},
            {"final_accuracy", accuracy},
            {"repeats", repeats},
            {"ms_runs", plain}};
  if (!with_summaries.empty()) {
    const double ms_logged = summarise_timings(with_summaries).median;
    r["ms_with_summaries"] = ms_logged;
    r["ms_with_summaries_runs"] = with_summaries;
    r["summaries_ratio"] = ms_logged / r["ms"].get<double>();
    r["summary_every"] = o.summary_every;
    r["final_accuracy_with_summaries"] = accuracy_with_summaries;
  }
  return r;
}

// Seed hyper-parameters, evaluating every 100 steps; training time only (device events).
json time_to_accuracy(const Options& o, BackendKind kind, const MnistData& data, double target) {
  auto backend = fresh_backend(o, kind, 100, data);
  EpochFeeder feed(*backend, o.seed, 100, data.train.count);
  auto watch = backend->stopwatch();
  double train_us = 0;
  const int max_steps = kind == BackendKind::kCpu ? 3000 : 20000;
  double accuracy = 0;
  while (backend->steps_taken() < max_steps) {
    throw_if_stop_requested("during --benchmark");
    for (int i = 0; i < 100; ++i) {
      feed.before_step();
      heartbeat("benchmark");  // outside the timed span
      watch->mark();
      backend->train_step();
      watch->mark();
    }
    train_us = 0;
    for (const double us : bracketed_us(*watch)) train_us += us;
    accuracy = double(backend->evaluate_test()) / data.test.count;
    if (accuracy >= target) break;
  }
  return {{"backend", backend_name(kind)}, {"target", target},
          {"reached", accuracy >= target}, {"steps", backend->steps_taken()},
          {"train_ms", train_us / 1000},   {"accuracy", accuracy}};
}

// Our forward and weight-gradient products against cuBLASLt's (fp32: CUBLAS_COMPUTE_32F, no
// TF32) at the model's shapes, each side timed to the same finished result:
//   forward      relu(X W + b). Ours where the step splits (small batches): the split-K product
//                and the pass that adds its slices, the bias and the ReLU (which also stores the
//                sum before the ReLU); unsplit: one product with the ReLU epilogue (also reported
//                where the step splits). cuBLASLt: one matmul with CUBLASLT_EPILOGUE_RELU_BIAS.
//   weight grad  [W; b] updated by Adam from X^T dZ and the column sums of dZ. Ours: one product
//                with the bias row and Adam in its epilogue (its split-K reduction included).
//                cuBLASLt: dW with CUBLASLT_EPILOGUE_BGRADA (db), then the baseline's Adam kernel
//                over the region.
json gemm_comparison(int batch) {
  const int k = kImagePixels, n = 500;
  const std::size_t region = std::size_t(k + 1) * n;
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1, 1);
  auto random = [&](std::size_t size) {
    std::vector<float> v(size);
    for (auto& x : v) x = u(rng);
    return v;
  };
  DeviceBuffer<float> x(random(std::size_t(batch) * k)), w(random(std::size_t(k) * n)),
      b(random(n)), y(std::size_t(batch) * n), pre(std::size_t(batch) * n),
      dz(random(std::size_t(batch) * n)), grad(region), p(random(region)),
      m(std::vector<float>(region, 0.0f)), v(std::vector<float>(region, 0.0f));
  const int splits = kernels::forward_splits(batch, n, k);
  DeviceBuffer<float> partials(std::size_t(splits) * batch * n),
      scratch(kernels::weight_grad_splits(k, n, batch) * region);
  DeviceBuffer<std::int64_t> step(std::vector<std::int64_t>{1});
  DeviceBuffer<std::uint8_t> workspace(kLtWorkspaceBytes);
  CudaStream stream;
  CublasLtHandle lt;
  auto time = [&](auto&& launch) {
    for (int i = 0; i < 20; ++i) launch();
    EventStopwatch watch(stream.get());
    for (int i = 0; i < 100; ++i) {
      watch.mark();
      launch();
      watch.mark();
    }
    return summarise_timings(bracketed_us(watch)).median;
  };
  // A tiny step size keeps the parameters near their start over the timed repetitions.
  constexpr float kLearningRate = 1e-9f;
  const kernels::AdamUpdate adam{p.get(),    m.get(),      v.get(),    kLearningRate, kAdamBeta1,
                                 kAdamBeta2, kAdamEpsilon, step.get(), scratch.get()};
  kernels::ReluDropout relu;
  relu.enabled = true;  // keep_prob 1: ReLU only
  const double ours_unsplit = time([&] {
    kernels::linear_forward(x.get(), w.get(), b.get(), y.get(), batch, k, n, relu, stream.get());
  });
  const double ours_fwd = splits == 1 ? ours_unsplit : time([&] {
    kernels::linear_forward_split(x.get(), w.get(), partials.get(), batch, k, n, stream.get());
    kernels::finish_summary_hidden(partials.get(), splits, b.get(), pre.get(), y.get(), batch, n,
                                   1.0f, 0, step.get(), stream.get());
  });
  LtProduct forward{"x*W + b, relu"};
  forward.m = batch, forward.n = n, forward.k = k;
  forward.a = x.get(), forward.b = w.get(), forward.c = y.get();
  forward.epilogue = LtEpilogue::kReluBias;
  forward.bias = b.get();
  const LtMatmul lt_forward(lt.get(), forward, workspace.get(), workspace.size());
  const double lt_fwd = time([&] { lt_forward.run(stream.get()); });

  const double ours_wgrad =
      time([&] { kernels::weight_grad_adam(x.get(), k, dz.get(), batch, n, adam, stream.get()); });
  LtProduct wgrad{"dW = x^T*dz, db"};
  wgrad.transpose_a = true;
  wgrad.m = k, wgrad.n = n, wgrad.k = batch;
  wgrad.a = x.get(), wgrad.b = dz.get(), wgrad.c = grad.get();
  wgrad.epilogue = LtEpilogue::kBiasGradient;
  wgrad.bias = grad.get() + std::size_t(k) * n;
  const LtMatmul lt_wgrad(lt.get(), wgrad, workspace.get(), workspace.size());
  const double lt_wgrad_us = time([&] {
    lt_wgrad.run(stream.get());
    kernels::adam_update(p.get(), grad.get(), m.get(), v.get(), region, kLearningRate, kAdamBeta1,
                         kAdamBeta2, kAdamEpsilon, step.get(), stream.get());
  });
  const double flops = 2.0 * batch * k * n;
  return {{"batch", batch},
          {"forward",
           {{"ours_us", ours_fwd},
            {"ours_splits", splits},
            {"ours_unsplit_us", ours_unsplit},
            {"cublaslt_us", lt_fwd},
            {"ours_tflops", flops / ours_fwd / 1e6},
            {"cublaslt_tflops", flops / lt_fwd / 1e6},
            {"ours_vs_cublaslt", lt_fwd / ours_fwd}}},
          {"weight_grad",
           {{"ours_us", ours_wgrad},
            {"cublaslt_us", lt_wgrad_us},
            {"ours_vs_cublaslt", lt_wgrad_us / ours_wgrad}}}};
}

std::size_t device_free_bytes() {
  size_t free_bytes = 0, total = 0;
  MNIST_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total));
  return free_bytes;
}

}  // namespace

json run_benchmark(const Options& options, const MnistData& data, bool gpu_present,
                   std::ostream& out) {
  std::vector<BackendKind> backends = options.benchmark_backends;
  if (backends.empty()) {
    backends = gpu_present ? std::vector<BackendKind>{BackendKind::kCuda, BackendKind::kCublas}
                           : std::vector<BackendKind>{BackendKind::kCpu};
  }
  for (const BackendKind kind : backends) {
    if (kind != BackendKind::kCpu && !gpu_present) {
      throw Error(ExitCode::kGpuUnusable, std::string("--benchmark_backends ") +
                                              backend_name(kind) +
                                              " needs a GPU: " + describe(probe_gpus()));
    }
  }
  json report;
  report["program"] = "mnist-train";
  report["version"] = program_version();
  report.update(provenance_json(std::chrono::system_clock::now()));  // timestamp, host, node
  report["device"] = gpu_present ? "GPU" : "CPU (no GPU visible)";
  char line[512];
  if (gpu_present) {
    const DeviceInfo gpu = device_info(0);
    report["gpu"] = device_json(gpu);
    std::string unreadable;
    const json env = gpu_environment_json(probe_gpus(), visible_devices(&unreadable));
    for (auto it = env.begin(); it != env.end(); ++it) report[it.key()] = it.value();
    std::snprintf(line, sizeof line,
                  "== mnist-train %s on %s (compute capability %d.%d, %.2f GiB, %s), CUDA driver "
                  "%s, runtime %s\n",
                  program_version(), gpu.name.c_str(), gpu.major, gpu.minor,
                  double(gpu.total_memory_bytes) / (1 << 30), gpu.uuid.c_str(),
                  report["driver_version"].get<std::string>().c_str(),
                  report["runtime_version"].get<std::string>().c_str());
  } else {
    std::snprintf(line, sizeof line, "== mnist-train %s on the CPU (no GPU visible)\n",
                  program_version());
  }
  out << line;
  report["model"] = model_name(options.model);
  report["steps"] = json::array();

  // Precisions of the GPU rows: the flag's, else every one this GPU runs (CPU rows: fp32).
  std::vector<Precision> precisions = options.benchmark_precisions;
  if (precisions.empty()) {
    precisions = {Precision::kFp32};
    int device = 0, major = 0;
    if (gpu_present && cudaGetDevice(&device) == cudaSuccess &&
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) == cudaSuccess &&
        major >= 8)
      precisions = {Precision::kFp32, Precision::kTf32, Precision::kBf16};
  }
  out << "\n== training step (" << model_name(options.model)
      << ", Adam, data resident; median of timed steps; precision of the wide products)\n";
  std::snprintf(line, sizeof line, "%-8s %-4s %-5s %-6s %7s %12s %12s %14s %10s\n", "backend", "on",
                "prec", "step", "batch", "median_us", "p90_us", "images/s", "vs cublas");
  out << line;
  std::map<std::pair<int, std::string>, double> cublas_median;  // (batch, precision)
  std::vector<json> rows;
  for (const BackendKind kind : backends) {
    const std::vector<Precision> fp32_only = {Precision::kFp32};
    for (const Precision precision : kind == BackendKind::kCpu ? fp32_only : precisions) {
      for (int batch : options.benchmark_batches) {
        if (batch > data.train.count) continue;
        rows.push_back(time_steps(options, kind, batch, precision, data));
        // Where auto fuses the step, the tiled step beside it (the previous version's).
        if (rows.back()["step_kernel"] == "fused")
          rows.push_back(time_steps(options, kind, batch, precision, data, StepKernel::kTiled));
        if (kind == BackendKind::kCublas)
          cublas_median[{batch, precision_name(precision)}] = rows.back()["median_us"];
      }
    }
  }
  for (json& r : rows) {
    const int batch = r["batch"];
    const std::pair<int, std::string> key{batch, r["precision"].get<std::string>()};
    const double ratio =
        cublas_median.count(key) ? cublas_median[key] / r["median_us"].get<double>() : 0.0;
    if (ratio > 0) r["speedup_vs_cublas"] = ratio;
    std::snprintf(line, sizeof line, "%-8s %-4s %-5s %-6s %7d %12.1f %12.1f %14.0f %10s\n",
                  r["backend"].get<std::string>().c_str(), r["device"].get<std::string>().c_str(),
                  r["precision"].get<std::string>().c_str(),
                  r["step_kernel"].get<std::string>().c_str(), batch, r["median_us"].get<double>(),
                  r["p90_us"].get<double>(), r["images_per_s"].get<double>(),
                  ratio > 0 ? (std::to_string(ratio).substr(0, 4) + "x").c_str() : "-");
    out << line;
    report["steps"].push_back(r);
  }

  out << "\n== evaluation alone (the full test set, " << data.test.count
      << " images, after 10 steps; median of the timed evaluations, count copied back)\n";
  report["evaluation"] = json::array();
  for (const BackendKind kind : backends) {
    const std::vector<Precision> fp32_only = {Precision::kFp32};
    for (const Precision precision : kind == BackendKind::kCpu ? fp32_only : precisions) {
      const json r = time_evaluation(options, kind, precision, data);
      std::snprintf(line, sizeof line, "%-8s %-5s %12.1f us %14.0f images/s   accuracy %.4f\n",
                    backend_name(kind), precision_name(precision), r["median_us"].get<double>(),
                    r["images_per_s"].get<double>(), r["accuracy"].get<double>());
      out << line;
      report["evaluation"].push_back(r);
    }
  }

  out << "\n== seed job (500 iterations incl. 50 full-test evaluations, batch 100, warm)\n";
  report["seed_job"] = json::array();
  // Summaries go to a fresh temporary folder, removed at the end; without one, that row is skipped.
  std::unique_ptr<TemporaryFolder> summaries_folder;
  std::string no_summaries;
  try {
    summaries_folder = std::make_unique<TemporaryFolder>();
  } catch (const Error& e) {
    no_summaries = e.what();
  }
  for (const BackendKind kind : backends) {
    const char* name = backend_name(kind);
    const std::size_t free_before =
        gpu_present && kind != BackendKind::kCpu ? device_free_bytes() : 0;
    json r = seed_job(options, kind, data, summaries_folder ? summaries_folder->path() : "");
    if (!no_summaries.empty()) r["summaries_skipped"] = no_summaries;
    if (free_before) {
      // The backend allocates everything up front; this is its footprint plus the graphs'.
      auto probe = fresh_backend(options, kind, 100, data);
      EpochFeeder feed(*probe, options.seed, 100, data.train.count);
      feed.before_step();
      heartbeat("benchmark");
      probe->train_step();
      probe->evaluate_test();
      r["device_memory_mib"] = double(free_before - device_free_bytes()) / (1 << 20);
    }
    std::snprintf(line, sizeof line, "%-8s %9.2f ms   final accuracy %.4f%s\n", name,
                  r["ms"].get<double>(), r["final_accuracy"].get<double>(),
                  r.contains("device_memory_mib")
                      ? ("   device memory " +
                         std::to_string(r["device_memory_mib"].get<double>()).substr(0, 6) + " MiB")
                            .c_str()
                      : "");
    out << line;
    report["seed_job"].push_back(r);
  }
  summaries_folder.reset();
  out << "\n== seed job with summaries (a fresh --log_dir in a temporary folder, --summary_every "
      << options.summary_every
      << "; GPU: the median of 5 runs after a warm-up, CPU: one run; as above)\n";
  if (!no_summaries.empty()) {
    out << "skipped: " << no_summaries << "\n";
  } else {
    for (const json& r : report["seed_job"]) {
      std::snprintf(line, sizeof line, "%-8s %9.2f ms without, %9.2f ms with summaries: %.2fx\n",
                    r["backend"].get<std::string>().c_str(), r["ms"].get<double>(),
                    r["ms_with_summaries"].get<double>(), r["summaries_ratio"].get<double>());
      out << line;
    }
  }

  out << "\n== time to 98% test accuracy (seed hyper-parameters, evaluated every 100 steps; "
         "training time only)\n";
  report["time_to_98"] = json::array();
  for (const BackendKind kind : backends) {
    const json r = time_to_accuracy(options, kind, data, 0.98);
    std::snprintf(line, sizeof line, "%-8s %s after %lld steps, %.2f ms of training\n",
                  backend_name(kind), r["reached"].get<bool>() ? "reached" : "NOT reached",
                  (long long)r["steps"].get<std::int64_t>(), r["train_ms"].get<double>());
    out << line;
    report["time_to_98"].push_back(r);
  }

  if (gpu_present) {
    out << "\n== our GEMMs vs cuBLASLt (fp32, no TF32), model shapes, each timed to the same "
           "finished result: forward relu(B x 784 x 500 + b); weight gradient 784 x 500 over B "
           "with the bias gradient, then Adam\n";
    report["gemm"] = json::array();
    for (int batch : options.benchmark_batches) {
      const json g = gemm_comparison(batch);
      std::snprintf(
          line, sizeof line,
          "batch %5d  forward: ours %8.1f us (split-K %d, slices added; unsplit %.1f us), "
          "cuBLASLt %8.1f us (%.2fx)   weight grad + bias grad + Adam: ours %8.1f us, "
          "cuBLASLt %8.1f us (%.2fx)\n",
          batch, g["forward"]["ours_us"].get<double>(), g["forward"]["ours_splits"].get<int>(),
          g["forward"]["ours_unsplit_us"].get<double>(), g["forward"]["cublaslt_us"].get<double>(),
          g["forward"]["ours_vs_cublaslt"].get<double>(), g["weight_grad"]["ours_us"].get<double>(),
          g["weight_grad"]["cublaslt_us"].get<double>(),
          g["weight_grad"]["ours_vs_cublaslt"].get<double>());
      out << line;
      report["gemm"].push_back(g);
    }
  }
  const bool cuda_timed =
      std::find(backends.begin(), backends.end(), BackendKind::kCuda) != backends.end();
  const int gpus = gpu_present ? probe_gpus().device_count : 0;
  if (cuda_timed && gpus > 1) {
    out << "\n== data-parallel scaling (cuda, one process, NCCL all-reduce of the gradient; "
           "images/s at B per GPU, efficiency = images/s / (n x one GPU's))\n";
    out << "GPUs  batch/GPU  global   step us      images/s  efficiency  all-reduce us  bus GB/s\n";
    report["data_parallel"] = json::array();
    for (int per_gpu : {1024, 8192}) {
      double one = 0.0;
      for (int n = 1; n <= gpus; n = n * 2 > gpus && n != gpus ? gpus : n * 2) {
        if (per_gpu * n > data.train.count) {  // a global batch beyond the training set
          std::snprintf(line, sizeof line,
                        "%4d %10d %7d   skipped: more rows than the %d training images\n", n,
                        per_gpu, per_gpu * n, data.train.count);
          out << line;
          continue;
        }
        const json r = data_parallel_scaling(options, n, per_gpu, data, one);
        std::snprintf(line, sizeof line, "%4d %10d %7d %9.1f %13.0f %10.1f%% %14.1f %9.1f\n", n,
                      per_gpu, r["global_batch"].get<int>(), r["median_step_us"].get<double>(),
                      r["images_per_s"].get<double>(),
                      100.0 * r["scaling_efficiency"].get<double>(),
                      r["all_reduce_us"].get<double>(), r["all_reduce_bus_gbps"].get<double>());
        out << line;
        report["data_parallel"].push_back(r);
      }
    }
  } else if (cuda_timed) {
    out << "\n== data-parallel scaling: skipped (" << gpus << " GPU visible; needs two or more)\n";
  }
  if (!options.benchmark_out.empty()) {
    const std::string text = report.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
    write_file_atomically(options.benchmark_out, {text.begin(), text.end()},
                          ExitCode::kOutputFailed);
    out << "\nwrote " << options.benchmark_out << "\n";
  }
  return report;
}

}  // namespace mnist
