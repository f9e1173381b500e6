// GPU health: the readings of src/gpu/nvml.h evaluated into the checks health.h lists.
#include "gpu/health.h"

#include <cstdio>
#include <system_error>
#include <utility>

#include "gpu/nvml_abi.h"  // the clock event reason bits

namespace mnist::health {

using nvml::Reading;
using nvml::ReadStatus;

const char* status_name(Status status) {
  switch (status) {
    case Status::kPass:
      return "pass";
    case Status::kWarn:
      return "warn";
    case Status::kFail:
      return "fail";
    case Status::kUnavailable:
      return "unavailable";
  }
  return "unavailable";
}

Severity Thresholds::severity_of(const std::string& check) const {
  const auto it = severity.find(check);
  return it == severity.end() ? Severity::kFail : it->second;
}

namespace {

// Combines the readings that worked; until one works, keeps the first error seen.
template <typename T, typename Combine>
void merge(Reading<T>& seen, const Reading<T>& now, Combine combine) {
  if (now.ok() && seen.ok())
    seen.value = combine(seen.value, now.value);
  else if (now.ok() || (!seen.ok() && seen.error.empty()))
    seen = now;
}

template <typename T>
T larger(T a, T b) {
  return a < b ? b : a;
}

std::string format(const char* pattern, double a, double b = 0, double c = 0) {
  char line[160];
  std::snprintf(line, sizeof line, pattern, a, b, c);
  return line;
}

template <typename T>
Check unreadable(const std::string& name, const Reading<T>& reading) {
  const std::string why = reading.status == ReadStatus::kNotSupported
                              ? "not supported by this GPU or driver (" + reading.error + ")"
                              : "cannot be read: " + reading.error;
  return {name, std::string("unavailable"), std::nullopt, "", Status::kUnavailable, why};
}

Check flag(const std::string& name, const Reading<bool>& set, const std::string& when_set,
           const std::string& when_clear) {
  if (!set.ok()) return unreadable(name, set);
  const std::string value = set.value ? "yes" : "no";
  const Status status = set.value ? Status::kFail : Status::kPass;
  return {name, value, std::nullopt, "", status, set.value ? when_set : when_clear};
}

std::string reason_names(unsigned long long reasons) {
  static const std::pair<unsigned long long, const char*> kNames[] = {
      {nvmlClocksEventReasonSwPowerCap, "sw_power_cap"},
      {nvmlClocksThrottleReasonHwSlowdown, "hw_slowdown"},
      {nvmlClocksEventReasonSwThermalSlowdown, "sw_thermal_slowdown"},
      {nvmlClocksThrottleReasonHwThermalSlowdown, "hw_thermal_slowdown"},
      {nvmlClocksThrottleReasonHwPowerBrakeSlowdown, "hw_power_brake_slowdown"}};
  std::string names;
  for (const auto& [bit, name] : kNames)
    if ((reasons & bit) != 0) names += (names.empty() ? "" : ",") + std::string(name);
  return names.empty() ? "none" : names;
}

// A clock-event check: fail when a `fail_bits` reason was seen, warn for a `warn_bits` one.
Check clock_events(const std::string& name, const Reading<unsigned long long>& seen,
                   unsigned long long fail_bits, unsigned long long warn_bits,
                   const std::string& why) {
  if (!seen.ok()) return unreadable(name, seen);
  const unsigned long long hit = seen.value & (fail_bits | warn_bits);
  const Status status = (hit & fail_bits) != 0 ? Status::kFail
                        : hit != 0             ? Status::kWarn
                                               : Status::kPass;
  return {name,
          reason_names(hit),
          std::nullopt,
          "",
          status,
          status == Status::kPass ? "no such clock event during the run"
                                  : reason_names(hit) + " during the run: " + why};
}

// Highest-seen against the maximum (PCIe generation and width).
Check at_maximum(const std::string& name, const Reading<unsigned>& seen,
                 const Reading<unsigned>& maximum, const std::string& unit,
                 const std::string& why) {
  if (!seen.ok()) return unreadable(name, seen);
  if (!maximum.ok()) return unreadable(name, maximum);
  const bool low = seen.value < maximum.value;
  return {name,
          double(seen.value),
          double(maximum.value),
          unit,
          low ? Status::kFail : Status::kPass,
          format(low ? "%.0f, below the maximum %.0f during the run: " : "%.0f of %.0f", seen.value,
                 maximum.value) +
              (low ? why : "")};
}

Check temperature(const Observed& during, const nvml::DeviceReading& end, double margin_c) {
  const auto& peak = during.peak_temperature_c;
  if (!peak.ok()) return unreadable("temperature", peak);
  if (!end.slowdown_temperature_c.ok())
    return unreadable("temperature", end.slowdown_temperature_c);
  const double slowdown = end.slowdown_temperature_c.value;
  const Status status = peak.value >= slowdown              ? Status::kFail
                        : peak.value >= slowdown - margin_c ? Status::kWarn
                                                            : Status::kPass;
  return {"temperature",
          double(peak.value),
          slowdown - margin_c,
          "°C",
          status,
          format("peak %.0f °C; slowdown at %.0f °C", peak.value, slowdown) +
              (status == Status::kPass ? "" : ": check the cooling")};
}

Check power(const Observed& during, const nvml::DeviceReading& end, double over_limit) {
  const auto& peak = during.peak_power_mw;
  if (!peak.ok()) return unreadable("power", peak);
  if (!end.power_limit_mw.ok()) return unreadable("power", end.power_limit_mw);
  const double watts = peak.value / 1000.0, limit = end.power_limit_mw.value / 1000.0;
  const bool over = watts > limit * (1 + over_limit);
  return {"power",
          watts,
          limit * (1 + over_limit),
          "W",
          over ? Status::kWarn : Status::kPass,
          format("peak %.0f W; enforced limit %.0f W", watts, limit) +
              (over ? ": the draw exceeds the limit (power regulation or sensor)" : "")};
}

Check nvlinks(const Reading<nvml::NvLinks>& links) {
  if (!links.ok()) return unreadable("nvlink_down", links);
  const auto& down = links.value.down;
  std::string which;
  for (unsigned link : down) which += (which.empty() ? "" : ",") + std::to_string(link);
  const double total = links.value.active + down.size();
  return {"nvlink_down",
          double(down.size()),
          0.0,
          "links",
          down.empty() ? Status::kPass : Status::kFail,
          down.empty() ? format("%.0f of %.0f links active", links.value.active, total)
                       : "links " + which + format(" of %.0f down: reseat or replace", total)};
}

Check xid_events(const Observed& during) {
  if (during.events.empty() && !during.events_watched.ok())
    return unreadable("xid_events", during.events_watched);
  std::string seen;
  for (const auto& event : during.events)
    seen += (seen.empty() ? "" : ", ") +
            (event.xid ? "Xid " + std::to_string(event.data) : "double-bit ECC error");
  return {"xid_events",
          double(during.events.size()),
          0.0,
          "events",
          seen.empty() ? Status::kPass : Status::kFail,
          seen.empty() ? "no Xid critical or double-bit ECC event during the run"
                       : seen + " during the run: the driver saw the hardware fail (see dmesg)"};
}

}  // namespace

void Observed::add(const nvml::Sample& sample) {
  merge(clock_event_reasons, sample.clock_event_reasons,
        [](unsigned long long a, unsigned long long b) { return a | b; });
  merge(peak_temperature_c, sample.temperature_c, larger<unsigned>);
  merge(peak_power_mw, sample.power_mw, larger<unsigned>);
  merge(peak_sm_clock_mhz, sample.sm_clock_mhz, larger<unsigned>);
  merge(top_pcie_generation, sample.pcie_generation, larger<unsigned>);
  merge(top_pcie_width, sample.pcie_width, larger<unsigned>);
  ++samples;
}

Check unavailable_check(const std::string& why) {
  return {"nvml", std::string("unavailable"), std::nullopt,
          "",     Status::kUnavailable,       "health not available: " + why};
}

std::vector<Check> evaluate(const nvml::DeviceReading& start, const nvml::DeviceReading& end,
                            const Observed& during, const Thresholds& thresholds) {
  std::vector<Check> checks;
  if (end.ecc_enabled.ok())
    checks.push_back({"ecc_mode", std::string(end.ecc_enabled.value ? "on" : "off"), std::nullopt,
                      "", end.ecc_enabled.value ? Status::kPass : Status::kWarn,
                      end.ecc_enabled.value ? "ECC on"
                                            : "ECC off: memory errors go undetected "
                                              "(nvidia-smi -e 1, then a GPU reset)"});
  else
    checks.push_back(unreadable("ecc_mode", end.ecc_enabled));

  const auto& uncorrected = end.ecc_uncorrected_volatile;
  if (uncorrected.ok()) {
    const bool any = uncorrected.value > 0;
    checks.push_back(
        {"ecc_uncorrected_volatile", double(uncorrected.value), 0.0, "errors",
         any ? Status::kFail : Status::kPass,
         format("%.0f uncorrectable ECC errors since the driver loaded",
                double(uncorrected.value)) +
             (any ? ": the GPU returned wrong data; drain the node, reset the GPU" : "")});
  } else {
    checks.push_back(unreadable("ecc_uncorrected_volatile", uncorrected));
  }

  const auto &corrected_start = start.ecc_corrected_volatile,
             &corrected_end = end.ecc_corrected_volatile;
  if (corrected_start.ok() && corrected_end.ok()) {
    const double added = corrected_end.value > corrected_start.value
                             ? double(corrected_end.value - corrected_start.value)
                             : 0.0;
    checks.push_back({"ecc_corrected_new", added, 0.0, "errors",
                      added > 0 ? Status::kWarn : Status::kPass,
                      format("%.0f correctable ECC errors during the run", added) +
                          (added > 0 ? ": corrected; watch the count" : "")});
  } else {
    checks.push_back(
        unreadable("ecc_corrected_new", corrected_start.ok() ? corrected_end : corrected_start));
  }

  const Reading<bool> pending{end.remapped_rows.status, end.remapped_rows.value.pending,
                              end.remapped_rows.error};
  const Reading<bool> failed{end.remapped_rows.status, end.remapped_rows.value.failed,
                             end.remapped_rows.error};
  const std::string rows =
      format("%.0f rows remapped for uncorrectable errors, %.0f for correctable",
             end.remapped_rows.value.uncorrected, end.remapped_rows.value.corrected);
  checks.push_back(flag("remapped_rows_pending", pending,
                        "a row remap waits for a GPU reset (" + rows + "): reset the GPU", rows));
  checks.push_back(flag("remapped_rows_failed", failed,
                        "a row remap failed, no spare rows left (" + rows + "): replace the GPU",
                        rows));
  const std::string pages = end.retired_pages.ok()
                                ? format("%.0f pages retired", end.retired_pages.value)
                                : "retired pages not counted";
  checks.push_back(flag("retired_pages_pending", end.retired_pages_pending,
                        "a page retirement waits for a reboot (" + pages + "): reboot the node",
                        pages));

  checks.push_back(clock_events(
      "clock_events_thermal", during.clock_event_reasons,
      nvmlClocksEventReasonSwThermalSlowdown | nvmlClocksThrottleReasonHwThermalSlowdown, 0,
      "the GPU got too hot; check the cooling"));
  checks.push_back(clock_events(
      "clock_events_hw_slowdown", during.clock_event_reasons, nvmlClocksThrottleReasonHwSlowdown, 0,
      "the hardware halved the clocks (heat, power brake or over-current)"));
  checks.push_back(
      clock_events("clock_events_power", during.clock_event_reasons,
                   nvmlClocksThrottleReasonHwPowerBrakeSlowdown, nvmlClocksEventReasonSwPowerCap,
                   "power brake: the power supply; power cap: the GPU ran at its limit"));
  checks.push_back(temperature(during, end, thresholds.temperature_margin_c));
  checks.push_back(power(during, end, thresholds.power_over_limit));
  checks.push_back(at_maximum("pcie_generation", during.top_pcie_generation,
                              end.pcie_max_generation, "generation",
                              "the link trained down (slot, riser or BIOS setting)"));
  checks.push_back(at_maximum("pcie_width", during.top_pcie_width, end.pcie_max_width, "lanes",
                              "lanes lost (riser, slot or seating)"));
  checks.push_back(nvlinks(end.nvlinks));
  checks.push_back(xid_events(during));

  for (auto& check : checks) {
    if (check.status == Status::kFail && thresholds.severity_of(check.name) == Severity::kWarn) {
      check.status = Status::kWarn;
      check.detail += " (set to warn only)";
    }
  }
  return checks;
}

Status GpuHealth::status() const {
  Status worst = Status::kUnavailable;
  for (const auto& check : checks) {
    if (check.status == Status::kFail) return Status::kFail;
    if (check.status == Status::kWarn) worst = Status::kWarn;
    if (check.status == Status::kPass && worst == Status::kUnavailable) worst = Status::kPass;
  }
  return worst;
}

Monitor::Monitor(std::vector<std::string> pci_bus_ids, Thresholds thresholds)
    : thresholds_(std::move(thresholds)) {
  std::vector<nvmlDevice_st*> devices;
  for (auto& pci_bus_id : pci_bus_ids) {
    Gpu gpu;
    gpu.pci_bus_id = std::move(pci_bus_id);
    const auto device = nvml_.device(gpu.pci_bus_id);
    if (device.ok()) {
      gpu.device = device.value;
      gpu.start = nvml_.read(gpu.device);
      gpu.during.add(gpu.start.sample);
      devices.push_back(gpu.device);
    } else {
      gpu.why = device.error;
    }
    gpus_.push_back(std::move(gpu));
  }
  if (devices.empty()) return;
  events_.emplace(nvml_, devices);
  try {
    sampler_ = std::thread(&Monitor::sample_until_stopped, this);
  } catch (const std::system_error&) {
    // No thread to be had: the start and end readings still make every check.
  }
}

Monitor::~Monitor() { stop(); }

void Monitor::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    wake_.notify_all();
  }
  if (sampler_.joinable()) sampler_.join();
}

void Monitor::record(const nvml::Event& event) {
  for (auto& gpu : gpus_)
    if (gpu.device != nullptr && gpu.device == event.device) gpu.during.events.push_back(event);
}

void Monitor::sample_until_stopped() {
  try {
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (stopping_) return;
      }
      for (auto& gpu : gpus_)
        if (gpu.device != nullptr) gpu.during.add(nvml_.sample(gpu.device));
      if (events_->watching().ok()) {
        // The event wait is the sampling interval; an event ends it early.
        if (const auto event = events_->wait(unsigned(kSampleInterval.count()))) record(*event);
      } else {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait_for(lock, kSampleInterval, [this] { return stopping_; });
      }
    }
  } catch (const std::exception&) {
    // Out of memory while sampling: stop; finish() still takes the end readings.
  }
}

std::vector<GpuHealth> Monitor::finish() {
  stop();
  if (results_) return *results_;
  // Events queued since the last wait; bounded, so a set that keeps reporting cannot hold us.
  for (int i = 0; events_ && i < 1000; ++i) {
    const auto event = events_->wait(0);
    if (!event) break;
    record(*event);
  }
  std::vector<GpuHealth> results;
  for (auto& gpu : gpus_) {
    GpuHealth health;
    health.pci_bus_id = gpu.pci_bus_id;
    if (gpu.device == nullptr) {
      health.checks = {unavailable_check(gpu.why)};
    } else {
      health.start = gpu.start;
      health.end = nvml_.read(gpu.device);
      gpu.during.add(health.end.sample);
      gpu.during.events_watched = events_->watching();
      health.during = gpu.during;
      health.checks = evaluate(health.start, health.end, health.during, thresholds_);
    }
    results.push_back(std::move(health));
  }
  results_ = results;
  return results;
}

}  // namespace mnist::health
