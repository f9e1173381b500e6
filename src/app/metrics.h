// The verdict as Prometheus metrics (--metrics_file): the text exposition format 0.0.4, for the
// node exporter's textfile collector, which reads every *.prom file of its folder at each scrape.
// One file holds one run, the last on the node; finish_run() writes it atomically through a
// temporary whose name does not end in ".prom" (data/fileio.h), so the collector never reads half a
// file.
//
// Families (all gauges; every sample has the label node):
//   mnist_train_info{version,reason,exit_name,mode,backend}   1
//   mnist_train_passed                                        1 passed, 0 failed
//   mnist_train_exit_code                                     the exit code
//   mnist_train_last_run_timestamp_seconds                    when the run finished (Unix time)
//   mnist_train_test_accuracy, mnist_train_images_per_second  when training ended
//   mnist_train_gpu_info{gpu,uuid,model,pci_bus_id}           1 per GPU used
// and per check (labels gpu, uuid, model: empty for a run-level check; check: its name):
//   mnist_train_check_value       its value, when a number
//   mnist_train_check_threshold   its threshold, when it has one
//   mnist_train_check_passed      1 when its status is pass, else 0
//   mnist_train_check_status{status}  1 for its status, 0 for the other three (pass, warn, fail,
//                                     unavailable): alert on
//                                     mnist_train_check_status{status="fail"}
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>

namespace mnist {

// A label value as the format writes it between its quotes: backslash, double quote and line feed
// escaped (\\, \", \n).
std::string escape_label_value(const std::string& value);

// The metrics of `verdict` (verdict_json()'s document), finished at `finished_at`.
std::string metrics_text(const nlohmann::ordered_json& verdict,
                         std::chrono::system_clock::time_point finished_at);

}  // namespace mnist
