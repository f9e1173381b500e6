// --benchmark: training-step latency and throughput of each backend at several batch sizes, on the
// resident dataset, plus the seed job (without and with summaries), time to 98% test accuracy,
// device memory, and our GEMMs against cuBLAS at the model's shapes. Prints a table and optionally
// writes JSON (--benchmark_out) naming the program's version, the GPU, driver and runtime.
#pragma once

#include <nlohmann/json.hpp>
#include <ostream>

#include "app/cli.h"
#include "data/dataset.h"

namespace mnist {

// Runs the benchmark, prints it to `out`, writes --benchmark_out, and returns the report (the
// JSON that --benchmark_out holds).
nlohmann::ordered_json run_benchmark(const Options& options, const MnistData& data,
                                     bool gpu_present, std::ostream& out);

}  // namespace mnist
