// --benchmark: training-step latency and throughput of each backend at several batch sizes, on the
// resident dataset, plus the seed job, time to 98% test accuracy, device memory, and our GEMMs
// against cuBLAS at the model's shapes. Prints a table and optionally writes JSON.
#pragma once

#include <ostream>

#include "app/cli.h"
#include "data/dataset.h"

namespace mnist {

void run_benchmark(const Options& options, const MnistData& data, bool gpu_present,
                   std::ostream& out);

}  // namespace mnist
