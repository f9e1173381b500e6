// A STAND-IN for NVIDIA's libnvidia-ml.so.1, for tests only: a shared library exporting the NVML
// entry points src/gpu/nvml_abi.h declares (the compiler checks these definitions against those
// declarations), loaded through MNIST_TEST_NVML_LIBRARY. It reads no hardware. The environment
// variable FAKE_NVML_SCENARIO, read by nvmlInit_v2, picks what it reports:
//   healthy            an H200-like GPU with nothing wrong (every reading supported)
//   ecc_uncorrected    2 uncorrectable volatile ECC errors
//   ecc_corrected_new  the correctable volatile ECC count rises between readings
//   pending_remap      a row remap pending      remap_failed     a row remap failed
//   retired_pending    a page retirement pending
//   thermal_throttle   HW thermal slowdown in every sample, 88 °C (slowdown at 87 °C)
//   throttle_once      HW thermal slowdown in the second clock-reason query only
//   power_cap          SW power cap             hot              84 °C
//   pcie_x8_gen3       the link at gen 3 x8 of gen 5 x16
//   idle_link          gen 3 on the first query only (an idle GPU), gen 5 after
//   nvlink_down        NVLink link 3 of 18 inactive
//   xid                one Xid 79 event on the first device registered
//   not_supported      every query but the handle lookup answers NVML_ERROR_NOT_SUPPORTED
//   no_device          no device at any bus id  init_fails       nvmlInit_v2 fails
// Built a second time with FAKE_NVML_MINIMAL, it exports only init, shutdown, the error string,
// the handle lookup and the old name of the clock-reason query (an old driver's NVML).
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "gpu/nvml_abi.h"

struct nvmlDevice_st {
  std::string pci_bus_id;
};
struct nvmlEventSet_st {
  nvmlDevice_t first = nullptr;  // the first device registered: where the xid scenario's event is
  bool delivered = false;
};

namespace {

std::string scenario;
nvmlDevice_st devices[8];
unsigned clock_queries = 0, pcie_generation_queries = 0, corrected_queries = 0;

bool is(const char* name) { return scenario == name; }
bool unsupported() { return is("not_supported"); }

}  // namespace

extern "C" {

// For the tests (no NVML function): how often the clock event reasons were read.
unsigned fake_nvml_clock_queries() { return __atomic_load_n(&clock_queries, __ATOMIC_SEQ_CST); }

nvmlReturn_t nvmlInit_v2(void) {
  const char* chosen = std::getenv("FAKE_NVML_SCENARIO");
  scenario = chosen != nullptr ? chosen : "healthy";
  __atomic_store_n(&clock_queries, 0, __ATOMIC_SEQ_CST);
  pcie_generation_queries = corrected_queries = 0;
  for (auto& device : devices) device.pci_bus_id.clear();
  return is("init_fails") ? NVML_ERROR_DRIVER_NOT_LOADED : NVML_SUCCESS;
}

nvmlReturn_t nvmlShutdown(void) { return NVML_SUCCESS; }

const char* nvmlErrorString(nvmlReturn_t result) {
  switch (result) {
    case NVML_SUCCESS:
      return "Success";
    case NVML_ERROR_NOT_SUPPORTED:
      return "Not Supported";
    case NVML_ERROR_NOT_FOUND:
      return "Not Found";
    case NVML_ERROR_DRIVER_NOT_LOADED:
      return "Driver Not Loaded";
    case NVML_ERROR_TIMEOUT:
      return "Timeout";
    default:
      return "Unknown Error";
  }
}

nvmlReturn_t nvmlDeviceGetHandleByPciBusId_v2(const char* pciBusId, nvmlDevice_t* device) {
  if (is("no_device")) return NVML_ERROR_NOT_FOUND;
  for (auto& d : devices) {
    if (d.pci_bus_id.empty()) d.pci_bus_id = pciBusId;
    if (d.pci_bus_id == pciBusId) {
      *device = &d;
      return NVML_SUCCESS;
    }
  }
  return NVML_ERROR_NOT_FOUND;
}

nvmlReturn_t nvmlDeviceGetCurrentClocksThrottleReasons(nvmlDevice_t, unsigned long long* reasons) {
  if (unsupported()) return NVML_ERROR_NOT_SUPPORTED;
  const unsigned query = __atomic_add_fetch(&clock_queries, 1, __ATOMIC_SEQ_CST);
  *reasons = 0;
  if (is("thermal_throttle") || (is("throttle_once") && query == 2))
    *reasons = nvmlClocksThrottleReasonHwThermalSlowdown;
  if (is("power_cap")) *reasons = nvmlClocksEventReasonSwPowerCap;
  return NVML_SUCCESS;
}

#ifndef FAKE_NVML_MINIMAL

nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t device,
                                                    unsigned long long* clocksEventReasons) {
  return nvmlDeviceGetCurrentClocksThrottleReasons(device, clocksEventReasons);
}

nvmlReturn_t nvmlSystemGetDriverVersion(char* version, unsigned int length) {
  if (unsupported()) return NVML_ERROR_NOT_SUPPORTED;
  std::strncpy(version, "580.00.fake", length);
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t, char* name, unsigned int length) {
  if (unsupported()) return NVML_ERROR_NOT_SUPPORTED;
  std::strncpy(name, "Fake NVIDIA H200", length);
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char* uuid, unsigned int length) {
  if (unsupported()) return NVML_ERROR_NOT_SUPPORTED;
  const std::string text = "GPU-fake-" + device->pci_bus_id;
  std::strncpy(uuid, text.c_str(), length);
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetEccMode(nvmlDevice_t, nvmlEnableState_t* current,
                                  nvmlEnableState_t* pending) {
  if (unsupported()) return NVML_ERROR_NOT_SUPPORTED;
  *current = *pending = NVML_FEATURE_ENABLED;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t, nvmlMemoryErrorType_t errorType,
                                         nvmlEccCounterType_t counterType,
                                         unsigned long long* eccCounts) {
  if (unsupported()) return NVML_ERROR_NOT_SUPPORTED;
  const bool uncorrected = errorType == NVML_MEMORY_ERROR_TYPE_UNCORRECTED;
  const bool volatile_count = counterType == NVML_VOLATILE_ECC;
  *eccCounts = 0;
  if (uncorrected && is("ecc_uncorrected")) *eccCounts = 2;
  if (!uncorrected && volatile_count && is("ecc_corrected_new")) *eccCounts = corrected_queries++;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetRetiredPagesPendingStatus(nvmlDevice_t, nvmlEnableState_t* isPending) {
  if (unsupported()) return NVML_ERROR_NOT_SUPPORTED;
  *isPending = is("retired_pending") ? NVML_FEATURE_ENABLED : NVML_FEATURE_DISABLED;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetRetiredPages(nvmlDevice_t, nvmlPageRetirementCause_t cause,
                                       unsigned int* pageCount, unsigned long long*) {
  if (unsupported()) return NVML_ERROR_NOT_SUPPORTED;
  const unsigned pages =
      is("retired_pending") && cause == NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR ? 1 : 0;
  const bool fits = *pageCount >= pages;
  *pageCount = pages;
  return fits ? NVML_SUCCESS : NVML_ERROR_INSUFFICIENT_SIZE;
}

nvmlReturn_t nvmlDeviceGetRemappedRows(nvmlDevice_t, unsigned int* corrRows, unsigned int* uncRows,
                                       unsigned int* isPending, unsigned int* failureOccurred) {
  if (unsupported()) return NVML_ERROR_NOT_SUPPORTED;
  *corrRows = 0;
  *uncRows = is("pending_remap") || is("remap_failed") ? 1 : 0;
  *isPending = is("pending_remap") ? 1 : 0;
  *failureOccurred = is("remap_failed") ? 1 : 0;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t, nvmlTemperatureSensors_t, unsigned int* temp) {
  if (unsupported()) return NVML_ERROR_NOT_SUPPORTED;
  *temp = is("thermal_throttle") ? 88 : is("hot") ? 84 : 41;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetTemperatureThreshold(nvmlDevice_t,
                                               nvmlTemperatureThresholds_t thresholdType,
                                               unsigned int* temp) {
  if (unsupported()) return NVML_ERROR_NOT_SUPPORTED;
  *temp = thresholdType == NVML_TEMPERATURE_THRESHOLD_SLOWDOWN ? 87 : 92;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t, unsigned int* power) {
  if (unsupported()) return NVML_ERROR_NOT_SUPPORTED;
  *power = 312000;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t, unsigned int* limit) {
  if (unsupported()) return NVML_ERROR_NOT_SUPPORTED;
  *limit = 700000;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCurrPcieLinkGeneration(nvmlDevice_t, unsigned int* currLinkGen) {
  if (unsupported()) return NVML_ERROR_NOT_SUPPORTED;
  const bool first = pcie_generation_queries++ == 0;
  *currLinkGen = is("pcie_x8_gen3") || (is("idle_link") && first) ? 3 : 5;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMaxPcieLinkGeneration(nvmlDevice_t, unsigned int* maxLinkGen) {
  if (unsupported()) return NVML_ERROR_NOT_SUPPORTED;
  *maxLinkGen = 5;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetGpuMaxPcieLinkGeneration(nvmlDevice_t, unsigned int* maxLinkGenDevice) {
  if (unsupported()) return NVML_ERROR_NOT_SUPPORTED;
  *maxLinkGenDevice = 5;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCurrPcieLinkWidth(nvmlDevice_t, unsigned int* currLinkWidth) {
  if (unsupported()) return NVML_ERROR_NOT_SUPPORTED;
  *currLinkWidth = is("pcie_x8_gen3") ? 8 : 16;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMaxPcieLinkWidth(nvmlDevice_t, unsigned int* maxLinkWidth) {
  if (unsupported()) return NVML_ERROR_NOT_SUPPORTED;
  *maxLinkWidth = 16;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetNvLinkState(nvmlDevice_t, unsigned int link,
                                      nvmlEnableState_t* isActive) {
  if (unsupported()) return NVML_ERROR_NOT_SUPPORTED;
  if (link >= 18) return NVML_ERROR_INVALID_ARGUMENT;  // an H200 has 18 links
  *isActive = is("nvlink_down") && link == 3 ? NVML_FEATURE_DISABLED : NVML_FEATURE_ENABLED;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t, nvmlClockType_t type, unsigned int* clock) {
  if (unsupported()) return NVML_ERROR_NOT_SUPPORTED;
  *clock = type == NVML_CLOCK_MEM ? 3201 : 1980;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMaxClockInfo(nvmlDevice_t, nvmlClockType_t type, unsigned int* clock) {
  if (unsupported()) return NVML_ERROR_NOT_SUPPORTED;
  *clock = type == NVML_CLOCK_MEM ? 3201 : 1980;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlEventSetCreate(nvmlEventSet_t* set) {
  if (unsupported()) return NVML_ERROR_NOT_SUPPORTED;
  *set = new nvmlEventSet_st;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceRegisterEvents(nvmlDevice_t device, unsigned long long eventTypes,
                                      nvmlEventSet_t set) {
  if (unsupported()) return NVML_ERROR_NOT_SUPPORTED;
  if ((eventTypes & nvmlEventTypeXidCriticalError) == 0) return NVML_ERROR_INVALID_ARGUMENT;
  if (set->first == nullptr) set->first = device;
  return NVML_SUCCESS;
}

nvmlReturn_t nvmlEventSetWait_v2(nvmlEventSet_t set, nvmlEventData_t* data,
                                 unsigned int timeoutms) {
  if (is("xid") && !set->delivered) {
    set->delivered = true;
    *data = nvmlEventData_t{set->first, nvmlEventTypeXidCriticalError, 79, 0xFFFFFFFF, 0xFFFFFFFF};
    return NVML_SUCCESS;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(timeoutms));
  return NVML_ERROR_TIMEOUT;
}

nvmlReturn_t nvmlEventSetFree(nvmlEventSet_t set) {
  delete set;
  return NVML_SUCCESS;
}

#endif  // FAKE_NVML_MINIMAL

}  // extern "C"
