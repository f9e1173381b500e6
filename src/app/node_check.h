// The node check around a training run on GPUs: each GPU's health from NVML (gpu/health.h),
// watched from before the first step to after the last, and its speed against its own promise
// (gpu/speed_probe.h), probed before training. Both land in the verdict's checks (app/report.h);
// a failing check whose severity is "fail" fails the run with exit 4, reason "unhealthy" or
// "slow". Which checks only warn, and the speed lines, come from the flags (app/cli.h).
#pragma once

#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "app/cli.h"
#include "app/report.h"
#include "gpu/device.h"
#include "gpu/health.h"
#include "gpu/speed_probe.h"

namespace mnist {

// Every check name the node check can report.
const std::vector<std::string>& node_check_names();

// Error(kBadArguments) naming the first of `names` (--warn_only) that is not such a check.
void check_warn_only(const std::vector<std::string>& names);

// The per-check decision, apart from the GPUs (tests drive it with a stand-in NVML and injected
// speed figures): each GPU's health checks added to record.gpu_checks under its CUDA ordinal
// (healths[i] is ordinals[i]'s) ...
void record_health(const std::vector<health::GpuHealth>& healths, const std::vector<int>& ordinals,
                   RunRecord& record);
// ... and the first check of record.gpu_checks that failed (a warning never does), as
// Error(kGpuUnusable) with reason "slow" for a speed check, "unhealthy" for the others.
void throw_if_a_check_failed(const RunRecord& record);

class NodeCheck {
 public:
  // Starts watching `gpus` (their NVML start readings), then probes each one's speed and records
  // the speed checks in `record` at once, so a run that fails later still reports them. Logs one
  // line per GPU. Throws CudaError / Error(kGpuUnusable) when a probe cannot run on a GPU.
  NodeCheck(const Options& options, const std::vector<DeviceInfo>& gpus, RunRecord& record,
            std::ostream& log);

  // After training: the end readings and the health checks, added to `record`; then throws
  // Error(kGpuUnusable, ..., "unhealthy" or "slow") naming the first failing check, when a check
  // with severity "fail" failed. Logs a line per GPU, and the time the node check took in all.
  void finish(RunRecord& record, std::ostream& log);

 private:
  std::vector<DeviceInfo> gpus_;
  health::Thresholds thresholds_;
  double seconds_ = 0;  // spent in the node check so far (what it adds to the run's wall time)
  std::unique_ptr<health::Monitor> monitor_;
};

}  // namespace mnist
