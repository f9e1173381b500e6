#include "app/node_check.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "error.h"

namespace mnist {
namespace {

using health::Check;
using health::Severity;
using health::Status;

// A failing check the flags turned into a warning says so in its detail.
Check with_severity(Check check, const health::Thresholds& thresholds) {
  if (check.status == Status::kFail && thresholds.severity_of(check.name) == Severity::kWarn) {
    check.status = Status::kWarn;
    check.detail += " (--warn_only: a warning, not a failure)";
  }
  return check;
}

SpeedThresholds speed_thresholds(const Options& o) {
  SpeedThresholds t;
  t.fail_fp32_ratio = t.fail_memory_ratio = o.min_speed_ratio;
  t.warn_fp32_ratio = t.warn_memory_ratio = std::max(o.min_speed_ratio, t.warn_fp32_ratio);
  t.fail_sibling_ratio = o.min_sibling_ratio;
  t.warn_sibling_ratio = std::max(o.min_sibling_ratio, t.warn_sibling_ratio);
  return t;
}

bool is_speed_check(const std::string& name) {
  return name == "fp32_throughput" || name == "memory_bandwidth" ||
         name == "sibling_fp32_throughput" || name == "sibling_memory_bandwidth";
}

}  // namespace

const std::vector<std::string>& node_check_names() {
  static const std::vector<std::string> names = {"ecc_mode",
                                                 "ecc_uncorrected_volatile",
                                                 "ecc_corrected_new",
                                                 "remapped_rows_pending",
                                                 "remapped_rows_failed",
                                                 "retired_pages_pending",
                                                 "clock_events_thermal",
                                                 "clock_events_hw_slowdown",
                                                 "clock_events_power",
                                                 "temperature",
                                                 "power",
                                                 "pcie_generation",
                                                 "pcie_width",
                                                 "nvlink_down",
                                                 "xid_events",
                                                 "fp32_throughput",
                                                 "memory_bandwidth",
                                                 "sibling_fp32_throughput",
                                                 "sibling_memory_bandwidth"};
  return names;
}

void check_warn_only(const std::vector<std::string>& names) {
  const auto& known = node_check_names();
  for (const std::string& name : names) {
    if (std::find(known.begin(), known.end(), name) != known.end()) continue;
    std::string list;
    for (const std::string& k : known) list += (list.empty() ? "" : ", ") + k;
    throw Error(ExitCode::kBadArguments,
                "--warn_only " + name + ": not a check that can fail (" + list + ")");
  }
}

NodeCheck::NodeCheck(const Options& options, const std::vector<DeviceInfo>& gpus, RunRecord& record,
                     std::ostream& log)
    : gpus_(gpus) {
  const auto start = std::chrono::steady_clock::now();
  for (const std::string& name : options.warn_only) thresholds_.severity[name] = Severity::kWarn;
  std::vector<std::string> bus_ids;
  for (const DeviceInfo& gpu : gpus_) bus_ids.push_back(gpu.pci_bus_id);
  monitor_ = std::make_unique<health::Monitor>(bus_ids, thresholds_);

  std::vector<SpeedProbeResult> probes;
  for (const DeviceInfo& gpu : gpus_) probes.push_back(probe_speed(gpu.ordinal));
  const SpeedThresholds lines = speed_thresholds(options);
  for (std::size_t i = 0; i < probes.size(); ++i) {
    const SpeedProbeResult& p = probes[i];
    char line[256];
    std::snprintf(line, sizeof line,
                  "Speed of GPU %d: FP32 %.1f TFLOP/s (%.0f%% of %.1f), memory %.0f GB/s (%.0f%% "
                  "of %.0f), probed in %.0f ms",
                  p.ordinal, p.fp32_tflops.achieved, 100 * p.fp32_tflops.ratio(),
                  p.fp32_tflops.promise, p.memory_gbps.achieved, 100 * p.memory_gbps.ratio(),
                  p.memory_gbps.promise, 1e3 * p.duration_s);
    log << line << std::endl;
    for (Check& check : evaluate_speed(probes, i, lines))
      record.gpu_checks.push_back({p.ordinal, with_severity(std::move(check), thresholds_)});
  }
  seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void record_health(const std::vector<health::GpuHealth>& healths, const std::vector<int>& ordinals,
                   RunRecord& record) {
  for (std::size_t i = 0; i < healths.size() && i < ordinals.size(); ++i) {
    for (const Check& check : healths[i].checks) record.gpu_checks.push_back({ordinals[i], check});
  }
}

void throw_if_a_check_failed(const RunRecord& record) {
  for (const RunCheck& c : record.gpu_checks) {
    if (c.check.status != Status::kFail) continue;
    throw Error(ExitCode::kGpuUnusable,
                "GPU " + (c.gpu ? std::to_string(*c.gpu) : std::string("?")) +
                    " failed the check " + c.check.name + ": " + c.check.detail,
                is_speed_check(c.check.name) ? "slow" : "unhealthy");
  }
}

void NodeCheck::finish(RunRecord& record, std::ostream& log) {
  const auto start = std::chrono::steady_clock::now();
  const std::vector<health::GpuHealth> healths = monitor_->finish();
  monitor_.reset();  // the sampler thread joined and NVML shut down: part of the check's cost
  std::vector<int> ordinals;
  for (const DeviceInfo& gpu : gpus_) ordinals.push_back(gpu.ordinal);
  record_health(healths, ordinals, record);
  for (std::size_t i = 0; i < healths.size() && i < gpus_.size(); ++i) {
    int warnings = 0;
    for (const Check& check : healths[i].checks) warnings += check.status == Status::kWarn;
    log << "Health of GPU " << gpus_[i].ordinal << ": " << health::status_name(healths[i].status())
        << (warnings ? " (" + std::to_string(warnings) + " warning(s) in the verdict)" : "")
        << std::endl;
  }
  seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  char line[96];
  std::snprintf(line, sizeof line, "Node check (health and speed of %zu GPU%s): %.0f ms",
                gpus_.size(), gpus_.size() == 1 ? "" : "s", 1e3 * seconds_);
  log << line << std::endl;
  throw_if_a_check_failed(record);
}

}  // namespace mnist
