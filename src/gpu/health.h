// Whether each GPU a run used is healthy, from NVML (src/gpu/nvml.h): a reading at the start of the
// run, samples while it trains, a reading at the end, and an evaluation into named checks for the
// verdict. It needs PCI bus ids only, no CUDA device, and never throws: where NVML cannot be read,
// the GPU gets one check "nvml" with status "unavailable".
//
// The checks (name: what it reads; when it warns or fails; why). "During the run" covers the start
// reading, a sample every 100 ms and the end reading. A reading the GPU or driver does not support
// makes its check "unavailable", which never fails the run.
//
//   ecc_mode                   ECC mode. Warn when off: errors in memory then go unseen.
//   ecc_uncorrected_volatile   Uncorrectable ECC errors since the driver loaded (end value). Fail
//                              on any: the GPU returned wrong data; drain the node, reset the GPU.
//   ecc_corrected_new          Correctable ECC errors during the run (end - start). Warn on any:
//                              corrected, but a rising count precedes uncorrectable ones.
//   remapped_rows_pending      (Ampere and newer) A memory row remap waits for a GPU reset. Fail:
//                              the faulty row stays in use until then.
//   remapped_rows_failed       (Ampere and newer) A remap failed: no spare rows left. Fail: the GPU
//                              needs replacing.
//   retired_pages_pending      (before Ampere) A page retirement waits for a reboot. Fail, as a
//                              pending remap.
//   clock_events_thermal       Clock event reasons HW or SW thermal slowdown during the run. Fail:
//                              the GPU got too hot (cooling, airflow, fan).
//   clock_events_hw_slowdown   Clock event reason HW slowdown (clocks halved or worse: heat, power
//                              brake, over-current protection) during the run. Fail.
//   clock_events_power         HW power brake during the run: fail (the power supply asserted it);
//                              SW power cap: warn (the GPU ran at its power limit, which is
//                              expected of a heavy load and costs speed, not correctness).
//   temperature                Peak GPU temperature during the run against the slowdown
//                              threshold. Fail at or above it; warn within temperature_margin_c
//                              (5 °C) of it: the GPU would throttle under a longer load.
//   power                      Peak power draw during the run against the enforced limit. Warn
//                              above it by more than power_over_limit (5 %): the power
//                              regulation or its sensor is off.
//   pcie_generation            Highest PCIe link generation seen during the run against the
//                              link's maximum (the lower of the GPU's and the slot's). Fail below
//                              it. An idle GPU trains its link down to save power, so one low
//                              reading is no fault: the samples taken while it trains must reach
//                              the maximum. A run too short to be sampled busy can read low:
//                              set the check to warn for such runs.
//   pcie_width                 Widest PCIe link seen during the run against the maximum width.
//                              Fail below it: a lane lost to a bad riser, slot or seating.
//   nvlink_down                NVLink links that exist but are not active (end reading). Fail on
//                              any. "unavailable" on a GPU without NVLink. Where some links are
//                              unused by design, set it to warn.
//   xid_events                 Xid critical errors and double-bit ECC errors NVML reported during
//                              the run (an event set). Fail on any: the driver saw the hardware
//                              fail (fell off the bus, page fault storm, uncorrectable memory).
//   nvml                       Only when the GPU cannot be read at all: no libnvidia-ml.so.1 (a
//                              container without the driver's utility libraries:
//                              NVIDIA_DRIVER_CAPABILITIES lacks "utility"), NVML init failed, or
//                              no NVML device at the bus id. Status unavailable.
//
// Each check's failing can be turned into a warning by name (Thresholds::severity).
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "gpu/nvml.h"

namespace mnist::health {

enum class Status { kPass, kWarn, kFail, kUnavailable };
const char* status_name(Status status);  // "pass", "warn", "fail", "unavailable"

struct Check {
  std::string name;  // a stable snake_case token (the table above)
  std::variant<double, std::string> value;
  std::optional<double> threshold;  // the value where it warns or fails, when it has one
  std::string unit;                 // "°C", "W", "errors", "lanes", ...; empty for none
  Status status = Status::kUnavailable;
  std::string detail;  // one line for operators
};

// What a check that fails does to the run.
enum class Severity {
  kFail,  // it fails the run (the default for every check)
  kWarn,  // it is reported as a warning
};

struct Thresholds {
  double temperature_margin_c = 5.0;  // warn this close to the slowdown temperature
  double power_over_limit = 0.05;     // warn when the peak draw exceeds the limit by this fraction
  std::map<std::string, Severity> severity;  // by check name; a check not named: kFail

  Severity severity_of(const std::string& check) const;
};

// What the samples of one GPU saw during the run: the worst of each reading.
struct Observed {
  nvml::Reading<unsigned long long> clock_event_reasons;  // every sample's reasons, or-ed
  nvml::Reading<unsigned> peak_temperature_c, peak_power_mw, peak_sm_clock_mhz;
  nvml::Reading<unsigned> top_pcie_generation, top_pcie_width;
  nvml::Reading<bool> events_watched;  // whether an event set watched the GPU
  std::vector<nvml::Event> events;     // Xid critical and double-bit ECC events
  unsigned samples = 0;

  void add(const nvml::Sample& sample);
};

// The checks of one GPU (the table above), failures turned into warnings per thresholds.severity.
std::vector<Check> evaluate(const nvml::DeviceReading& start, const nvml::DeviceReading& end,
                            const Observed& during, const Thresholds& thresholds = {});

// The one check of a GPU that cannot be read: "nvml", unavailable, "health not available: <why>".
Check unavailable_check(const std::string& why);

struct GpuHealth {
  std::string pci_bus_id;
  nvml::DeviceReading start, end;  // all "not supported" when the GPU could not be read
  Observed during;
  std::vector<Check> checks;

  // fail if any check fails, else warn if any warns, else pass if any passes, else unavailable.
  Status status() const;
};

// Watches the GPUs of a run. The constructor takes each GPU's start reading and starts a thread
// that samples every GPU every 100 ms and collects events. A thread rather than a call from the
// training loop: src/train sits below src/gpu and cannot call it, the sampling rate stays
// independent of the step time, and the event wait doubles as the sampling interval.
class Monitor {
 public:
  static constexpr std::chrono::milliseconds kSampleInterval{100};

  // The GPUs by PCI bus id (src/gpu/device.h DeviceInfo::pci_bus_id). Never throws.
  explicit Monitor(std::vector<std::string> pci_bus_ids, Thresholds thresholds = {});
  // Stops the sampling thread (within one sample interval) without evaluating.
  ~Monitor();
  Monitor(const Monitor&) = delete;
  Monitor& operator=(const Monitor&) = delete;

  // Stops sampling, collects the events still queued, takes each GPU's end reading and evaluates
  // it, in the order of the constructor's bus ids. Never throws; a second call returns the same.
  std::vector<GpuHealth> finish();

  const nvml::Nvml& nvml() const { return nvml_; }

 private:
  struct Gpu {
    std::string pci_bus_id;
    nvmlDevice_st* device = nullptr;  // null: the GPU cannot be read (why says why)
    std::string why;
    nvml::DeviceReading start;
    Observed during;
  };
  void sample_until_stopped();
  void record(const nvml::Event& event);
  void stop();

  nvml::Nvml nvml_;
  Thresholds thresholds_;
  std::vector<Gpu> gpus_;
  std::optional<nvml::EventSet> events_;
  std::optional<std::vector<GpuHealth>> results_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;  // guarded by mutex_
  std::thread sampler_;
};

}  // namespace mnist::health
