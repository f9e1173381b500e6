// --benchmark: training-step latency and throughput of each backend at several batch sizes, on the
// resident dataset, plus the seed job (without and with summaries), time to 98% test accuracy,
// device memory, and our GEMMs against cuBLASLt at the model's shapes. Prints a table and
// optionally writes JSON (--benchmark_out) naming the program's version, the GPU, driver and
// runtime.
#pragma once

#include <nlohmann/json.hpp>
#include <ostream>
#include <vector>

#include "app/cli.h"
#include "data/dataset.h"

namespace mnist {

// The minimum, median and 90th percentile of timed samples, as --benchmark reports them: of the n
// samples sorted v[0..n-1], v[0]; the middle one (for an even n the mean of the middle two); and
// the nearest-rank 90th percentile v[ceil(0.9 n) - 1]. No samples give zeros.
struct TimingSummary {
  double min = 0, median = 0, p90 = 0;
};
TimingSummary summarise_timings(std::vector<double> samples);

// Runs the benchmark, prints it to `out`, writes --benchmark_out, and returns the report (the
// JSON that --benchmark_out holds).
nlohmann::ordered_json run_benchmark(const Options& options, const MnistData& data,
                                     bool gpu_present, std::ostream& out);

}  // namespace mnist
