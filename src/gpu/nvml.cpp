// NVML through dlopen: the entry points are looked up by name with the types nvml_abi.h declares.
#include "gpu/nvml.h"

#include <dlfcn.h>

#include <cstdlib>
#include <utility>

#include "gpu/nvml_abi.h"

namespace mnist::nvml {

std::string library_path() {
  const char* test_library = std::getenv("MNIST_TEST_NVML_LIBRARY");
  return test_library != nullptr && *test_library != '\0' ? test_library : "libnvidia-ml.so.1";
}

// Members are named as NVML names the functions; a null member is an entry point this library
// lacks. Destruction runs nvmlShutdown, then dlclose (members are destroyed in reverse order).
struct Api {
  struct Closer {
    void operator()(void* handle) const { dlclose(handle); }
  };
  std::unique_ptr<void, Closer> library;
  decltype(&::nvmlInit_v2) nvmlInit_v2 = nullptr;
  decltype(&::nvmlShutdown) nvmlShutdown = nullptr;
  decltype(&::nvmlErrorString) nvmlErrorString = nullptr;
  decltype(&::nvmlSystemGetDriverVersion) nvmlSystemGetDriverVersion = nullptr;
  decltype(&::nvmlDeviceGetHandleByPciBusId_v2) nvmlDeviceGetHandleByPciBusId_v2 = nullptr;
  decltype(&::nvmlDeviceGetName) nvmlDeviceGetName = nullptr;
  decltype(&::nvmlDeviceGetUUID) nvmlDeviceGetUUID = nullptr;
  decltype(&::nvmlDeviceGetEccMode) nvmlDeviceGetEccMode = nullptr;
  decltype(&::nvmlDeviceGetTotalEccErrors) nvmlDeviceGetTotalEccErrors = nullptr;
  decltype(&::nvmlDeviceGetRetiredPagesPendingStatus) nvmlDeviceGetRetiredPagesPendingStatus =
      nullptr;
  decltype(&::nvmlDeviceGetRetiredPages) nvmlDeviceGetRetiredPages = nullptr;
  decltype(&::nvmlDeviceGetRemappedRows) nvmlDeviceGetRemappedRows = nullptr;
  decltype(&::nvmlDeviceGetCurrentClocksEventReasons) nvmlDeviceGetCurrentClocksEventReasons =
      nullptr;
  decltype(&::nvmlDeviceGetCurrentClocksThrottleReasons) nvmlDeviceGetCurrentClocksThrottleReasons =
      nullptr;
  decltype(&::nvmlDeviceGetTemperature) nvmlDeviceGetTemperature = nullptr;
  decltype(&::nvmlDeviceGetTemperatureThreshold) nvmlDeviceGetTemperatureThreshold = nullptr;
  decltype(&::nvmlDeviceGetPowerUsage) nvmlDeviceGetPowerUsage = nullptr;
  decltype(&::nvmlDeviceGetEnforcedPowerLimit) nvmlDeviceGetEnforcedPowerLimit = nullptr;
  decltype(&::nvmlDeviceGetCurrPcieLinkGeneration) nvmlDeviceGetCurrPcieLinkGeneration = nullptr;
  decltype(&::nvmlDeviceGetMaxPcieLinkGeneration) nvmlDeviceGetMaxPcieLinkGeneration = nullptr;
  decltype(&::nvmlDeviceGetGpuMaxPcieLinkGeneration) nvmlDeviceGetGpuMaxPcieLinkGeneration =
      nullptr;
  decltype(&::nvmlDeviceGetCurrPcieLinkWidth) nvmlDeviceGetCurrPcieLinkWidth = nullptr;
  decltype(&::nvmlDeviceGetMaxPcieLinkWidth) nvmlDeviceGetMaxPcieLinkWidth = nullptr;
  decltype(&::nvmlDeviceGetNvLinkState) nvmlDeviceGetNvLinkState = nullptr;
  decltype(&::nvmlDeviceGetClockInfo) nvmlDeviceGetClockInfo = nullptr;
  decltype(&::nvmlDeviceGetMaxClockInfo) nvmlDeviceGetMaxClockInfo = nullptr;
  decltype(&::nvmlEventSetCreate) nvmlEventSetCreate = nullptr;
  decltype(&::nvmlDeviceRegisterEvents) nvmlDeviceRegisterEvents = nullptr;
  decltype(&::nvmlEventSetWait_v2) nvmlEventSetWait_v2 = nullptr;
  decltype(&::nvmlEventSetFree) nvmlEventSetFree = nullptr;
  bool initialised = false;

  Api() = default;
  Api(const Api&) = delete;
  Api& operator=(const Api&) = delete;
  ~Api() {
    if (initialised) nvmlShutdown();
  }

  std::string error(nvmlReturn_t status) const {
    const char* text = nvmlErrorString != nullptr ? nvmlErrorString(status) : nullptr;
    return text != nullptr ? text : "NVML error " + std::to_string(status);
  }
};

namespace {

template <typename Fn>
void bind(void* library, const char* name, Fn& fn) {
  fn = reinterpret_cast<Fn>(dlsym(library, name));
}
#define MNIST_NVML_BIND(api, name) bind((api).library.get(), #name, (api).name)

std::shared_ptr<const Api> load(const std::string& path, std::string& why) {
  auto api = std::make_shared<Api>();
  api->library.reset(dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL));
  if (!api->library) {
    const char* error = dlerror();
    why = error != nullptr ? error : "cannot load " + path;
    return nullptr;
  }
  Api& a = *api;
  MNIST_NVML_BIND(a, nvmlInit_v2);
  MNIST_NVML_BIND(a, nvmlShutdown);
  MNIST_NVML_BIND(a, nvmlErrorString);
  MNIST_NVML_BIND(a, nvmlSystemGetDriverVersion);
  MNIST_NVML_BIND(a, nvmlDeviceGetHandleByPciBusId_v2);
  MNIST_NVML_BIND(a, nvmlDeviceGetName);
  MNIST_NVML_BIND(a, nvmlDeviceGetUUID);
  MNIST_NVML_BIND(a, nvmlDeviceGetEccMode);
  MNIST_NVML_BIND(a, nvmlDeviceGetTotalEccErrors);
  MNIST_NVML_BIND(a, nvmlDeviceGetRetiredPagesPendingStatus);
  MNIST_NVML_BIND(a, nvmlDeviceGetRetiredPages);
  MNIST_NVML_BIND(a, nvmlDeviceGetRemappedRows);
  MNIST_NVML_BIND(a, nvmlDeviceGetCurrentClocksEventReasons);
  MNIST_NVML_BIND(a, nvmlDeviceGetCurrentClocksThrottleReasons);
  MNIST_NVML_BIND(a, nvmlDeviceGetTemperature);
  MNIST_NVML_BIND(a, nvmlDeviceGetTemperatureThreshold);
  MNIST_NVML_BIND(a, nvmlDeviceGetPowerUsage);
  MNIST_NVML_BIND(a, nvmlDeviceGetEnforcedPowerLimit);
  MNIST_NVML_BIND(a, nvmlDeviceGetCurrPcieLinkGeneration);
  MNIST_NVML_BIND(a, nvmlDeviceGetMaxPcieLinkGeneration);
  MNIST_NVML_BIND(a, nvmlDeviceGetGpuMaxPcieLinkGeneration);
  MNIST_NVML_BIND(a, nvmlDeviceGetCurrPcieLinkWidth);
  MNIST_NVML_BIND(a, nvmlDeviceGetMaxPcieLinkWidth);
  MNIST_NVML_BIND(a, nvmlDeviceGetNvLinkState);
  MNIST_NVML_BIND(a, nvmlDeviceGetClockInfo);
  MNIST_NVML_BIND(a, nvmlDeviceGetMaxClockInfo);
  MNIST_NVML_BIND(a, nvmlEventSetCreate);
  MNIST_NVML_BIND(a, nvmlDeviceRegisterEvents);
  MNIST_NVML_BIND(a, nvmlEventSetWait_v2);
  MNIST_NVML_BIND(a, nvmlEventSetFree);
  if (!a.nvmlInit_v2 || !a.nvmlShutdown || !a.nvmlDeviceGetHandleByPciBusId_v2) {
    why = path + " lacks nvmlInit_v2, nvmlShutdown or nvmlDeviceGetHandleByPciBusId_v2";
    return nullptr;
  }
  const nvmlReturn_t status = a.nvmlInit_v2();
  if (status != NVML_SUCCESS) {
    why = "nvmlInit_v2: " + a.error(status);
    return nullptr;
  }
  a.initialised = true;
  return api;
}

template <typename T>
Reading<T> result(const Api& api, nvmlReturn_t status, T value) {
  Reading<T> reading;
  if (status == NVML_SUCCESS) {
    reading.status = ReadStatus::kOk;
    reading.value = std::move(value);
  } else {
    reading.status =
        status == NVML_ERROR_NOT_SUPPORTED ? ReadStatus::kNotSupported : ReadStatus::kFailed;
    reading.error = api.error(status);
  }
  return reading;
}

template <typename T>
Reading<T> missing(const char* entry_point) {
  Reading<T> reading;
  reading.error = std::string(entry_point) + " is not in this NVML";
  return reading;
}

// fn(args..., &value): the usual NVML shape, one result through the last argument.
template <typename T, typename Fn, typename... Args>
Reading<T> get(const Api& api, Fn fn, const char* entry_point, Args... args) {
  if (fn == nullptr) return missing<T>(entry_point);
  T value{};
  const nvmlReturn_t status = fn(args..., &value);
  return result(api, status, std::move(value));
}
#define MNIST_NVML_GET(T, api, name, ...) get<T>((api), (api).name, #name, __VA_ARGS__)

Reading<bool> enabled(const Reading<nvmlEnableState_t>& state) {
  return {state.status, state.value == NVML_FEATURE_ENABLED, state.error};
}

template <typename Fn>
Reading<std::string> text(const Api& api, Fn fn, const char* entry_point, nvmlDevice_t device) {
  if (fn == nullptr) return missing<std::string>(entry_point);
  char buffer[NVML_DEVICE_NAME_V2_BUFFER_SIZE] = {};  // also NVML_DEVICE_UUID_V2_BUFFER_SIZE
  const nvmlReturn_t status = fn(device, buffer, sizeof buffer);
  buffer[sizeof buffer - 1] = '\0';
  return result(api, status, std::string(buffer));
}

Reading<unsigned> retired_pages(const Api& api, nvmlDevice_t device) {
  if (api.nvmlDeviceGetRetiredPages == nullptr)
    return missing<unsigned>("nvmlDeviceGetRetiredPages");
  unsigned total = 0;
  for (auto cause : {NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS,
                     NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR}) {
    unsigned count = 0;  // a zero-sized buffer: NVML answers with the count alone
    nvmlReturn_t status = api.nvmlDeviceGetRetiredPages(device, cause, &count, nullptr);
    if (status == NVML_ERROR_INSUFFICIENT_SIZE) status = NVML_SUCCESS;
    if (status != NVML_SUCCESS) return result(api, status, 0u);
    total += count;
  }
  return result(api, NVML_SUCCESS, total);
}

Reading<RemappedRows> remapped_rows(const Api& api, nvmlDevice_t device) {
  if (api.nvmlDeviceGetRemappedRows == nullptr)
    return missing<RemappedRows>("nvmlDeviceGetRemappedRows");
  unsigned corrected = 0, uncorrected = 0, pending = 0, failed = 0;
  const nvmlReturn_t status =
      api.nvmlDeviceGetRemappedRows(device, &corrected, &uncorrected, &pending, &failed);
  return result(api, status, RemappedRows{corrected, uncorrected, pending != 0, failed != 0});
}

Reading<NvLinks> nvlinks(const Api& api, nvmlDevice_t device) {
  if (api.nvmlDeviceGetNvLinkState == nullptr) return missing<NvLinks>("nvmlDeviceGetNvLinkState");
  NvLinks links;
  bool any = false;
  for (unsigned link = 0; link < NVML_NVLINK_MAX_LINKS; ++link) {
    nvmlEnableState_t active = NVML_FEATURE_DISABLED;
    const nvmlReturn_t status = api.nvmlDeviceGetNvLinkState(device, link, &active);
    // A GPU with fewer links than the maximum answers these for the numbers it lacks.
    if (status == NVML_ERROR_NOT_SUPPORTED || status == NVML_ERROR_INVALID_ARGUMENT) continue;
    if (status != NVML_SUCCESS) return result(api, status, NvLinks{});
    any = true;
    if (active == NVML_FEATURE_ENABLED)
      ++links.active;
    else
      links.down.push_back(link);
  }
  if (!any) return {ReadStatus::kNotSupported, {}, "no NVLink link on this GPU"};
  return result(api, NVML_SUCCESS, std::move(links));
}

}  // namespace

Nvml::Nvml() : Nvml(library_path()) {}

Nvml::Nvml(const std::string& library) { api_ = load(library, unavailable_); }

Reading<std::string> Nvml::driver_version() const {
  if (!api_) return {ReadStatus::kFailed, {}, unavailable_};
  if (api_->nvmlSystemGetDriverVersion == nullptr)
    return missing<std::string>("nvmlSystemGetDriverVersion");
  char buffer[NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE] = {};
  const nvmlReturn_t status = api_->nvmlSystemGetDriverVersion(buffer, sizeof buffer);
  buffer[sizeof buffer - 1] = '\0';
  return result(*api_, status, std::string(buffer));
}

Reading<nvmlDevice_st*> Nvml::device(const std::string& pci_bus_id) const {
  if (!api_) return {ReadStatus::kFailed, nullptr, unavailable_};
  nvmlDevice_t device = nullptr;
  const nvmlReturn_t status = api_->nvmlDeviceGetHandleByPciBusId_v2(pci_bus_id.c_str(), &device);
  Reading<nvmlDevice_st*> reading = result(*api_, status, device);
  if (!reading.ok()) reading.error = "no NVML device at PCI " + pci_bus_id + ": " + reading.error;
  return reading;
}

Sample Nvml::sample(nvmlDevice_st* device) const {
  Sample s;
  if (!api_) return s;
  const Api& api = *api_;
  s.clock_event_reasons =
      api.nvmlDeviceGetCurrentClocksEventReasons != nullptr
          ? MNIST_NVML_GET(unsigned long long, api, nvmlDeviceGetCurrentClocksEventReasons, device)
          : MNIST_NVML_GET(unsigned long long, api, nvmlDeviceGetCurrentClocksThrottleReasons,
                           device);
  s.temperature_c =
      MNIST_NVML_GET(unsigned, api, nvmlDeviceGetTemperature, device, NVML_TEMPERATURE_GPU);
  s.power_mw = MNIST_NVML_GET(unsigned, api, nvmlDeviceGetPowerUsage, device);
  s.pcie_generation = MNIST_NVML_GET(unsigned, api, nvmlDeviceGetCurrPcieLinkGeneration, device);
  s.pcie_width = MNIST_NVML_GET(unsigned, api, nvmlDeviceGetCurrPcieLinkWidth, device);
  s.sm_clock_mhz = MNIST_NVML_GET(unsigned, api, nvmlDeviceGetClockInfo, device, NVML_CLOCK_SM);
  return s;
}

DeviceReading Nvml::read(nvmlDevice_st* device) const {
  DeviceReading r;
  if (!api_) return r;
  const Api& api = *api_;
  r.sample = sample(device);
  r.name = text(api, api.nvmlDeviceGetName, "nvmlDeviceGetName", device);
  r.uuid = text(api, api.nvmlDeviceGetUUID, "nvmlDeviceGetUUID", device);
  if (api.nvmlDeviceGetEccMode == nullptr) {
    r.ecc_enabled = missing<bool>("nvmlDeviceGetEccMode");
  } else {
    nvmlEnableState_t current = NVML_FEATURE_DISABLED, pending = NVML_FEATURE_DISABLED;
    const nvmlReturn_t status = api.nvmlDeviceGetEccMode(device, &current, &pending);
    r.ecc_enabled = enabled(result(api, status, current));
  }
  const auto ecc = [&](nvmlMemoryErrorType_t type, nvmlEccCounterType_t counter) {
    return MNIST_NVML_GET(unsigned long long, api, nvmlDeviceGetTotalEccErrors, device, type,
                          counter);
  };
  r.ecc_corrected_volatile = ecc(NVML_MEMORY_ERROR_TYPE_CORRECTED, NVML_VOLATILE_ECC);
  r.ecc_uncorrected_volatile = ecc(NVML_MEMORY_ERROR_TYPE_UNCORRECTED, NVML_VOLATILE_ECC);
  r.ecc_corrected_aggregate = ecc(NVML_MEMORY_ERROR_TYPE_CORRECTED, NVML_AGGREGATE_ECC);
  r.ecc_uncorrected_aggregate = ecc(NVML_MEMORY_ERROR_TYPE_UNCORRECTED, NVML_AGGREGATE_ECC);
  r.retired_pages_pending = enabled(
      MNIST_NVML_GET(nvmlEnableState_t, api, nvmlDeviceGetRetiredPagesPendingStatus, device));
  r.retired_pages = retired_pages(api, device);
  r.remapped_rows = remapped_rows(api, device);
  r.slowdown_temperature_c = MNIST_NVML_GET(unsigned, api, nvmlDeviceGetTemperatureThreshold,
                                            device, NVML_TEMPERATURE_THRESHOLD_SLOWDOWN);
  r.shutdown_temperature_c = MNIST_NVML_GET(unsigned, api, nvmlDeviceGetTemperatureThreshold,
                                            device, NVML_TEMPERATURE_THRESHOLD_SHUTDOWN);
  r.power_limit_mw = MNIST_NVML_GET(unsigned, api, nvmlDeviceGetEnforcedPowerLimit, device);
  r.pcie_max_generation = MNIST_NVML_GET(unsigned, api, nvmlDeviceGetMaxPcieLinkGeneration, device);
  r.pcie_gpu_max_generation =
      MNIST_NVML_GET(unsigned, api, nvmlDeviceGetGpuMaxPcieLinkGeneration, device);
  r.pcie_max_width = MNIST_NVML_GET(unsigned, api, nvmlDeviceGetMaxPcieLinkWidth, device);
  r.nvlinks = nvlinks(api, device);
  r.sm_max_clock_mhz =
      MNIST_NVML_GET(unsigned, api, nvmlDeviceGetMaxClockInfo, device, NVML_CLOCK_SM);
  r.memory_clock_mhz =
      MNIST_NVML_GET(unsigned, api, nvmlDeviceGetClockInfo, device, NVML_CLOCK_MEM);
  r.memory_max_clock_mhz =
      MNIST_NVML_GET(unsigned, api, nvmlDeviceGetMaxClockInfo, device, NVML_CLOCK_MEM);
  return r;
}

EventSet::EventSet(const Nvml& nvml, const std::vector<nvmlDevice_st*>& devices) : api_(nvml.api_) {
  if (!api_) {
    watching_ = {ReadStatus::kFailed, false, nvml.unavailable_reason()};
    return;
  }
  const Api& api = *api_;
  if (!api.nvmlEventSetCreate || !api.nvmlDeviceRegisterEvents || !api.nvmlEventSetWait_v2 ||
      !api.nvmlEventSetFree) {
    watching_ = missing<bool>(
        "nvmlEventSetCreate, nvmlDeviceRegisterEvents, nvmlEventSetWait_v2 or nvmlEventSetFree");
    return;
  }
  nvmlReturn_t status = api.nvmlEventSetCreate(&set_);
  if (status != NVML_SUCCESS) set_ = nullptr;
  for (auto it = devices.begin(); status == NVML_SUCCESS && it != devices.end(); ++it) {
    status = api.nvmlDeviceRegisterEvents(
        *it, nvmlEventTypeXidCriticalError | nvmlEventTypeDoubleBitEccError, set_);
    // NOT_SUPPORTED registers none of the types: a GPU without ECC lacks the second.
    if (status == NVML_ERROR_NOT_SUPPORTED)
      status = api.nvmlDeviceRegisterEvents(*it, nvmlEventTypeXidCriticalError, set_);
  }
  watching_ = result(api, status, status == NVML_SUCCESS);
}

EventSet::~EventSet() {
  if (set_ != nullptr) api_->nvmlEventSetFree(set_);
}

std::optional<Event> EventSet::wait(unsigned timeout_ms) {
  if (!watching_.ok()) return std::nullopt;
  nvmlEventData_t data{};
  const nvmlReturn_t status = api_->nvmlEventSetWait_v2(set_, &data, timeout_ms);
  if (status == NVML_SUCCESS)
    return Event{data.device, (data.eventType & nvmlEventTypeXidCriticalError) != 0,
                 data.eventData};
  // Any error but a timeout ends the watch, so a caller's loop never spins on a broken set.
  if (status != NVML_ERROR_TIMEOUT) watching_ = result(*api_, status, false);
  return std::nullopt;
}

}  // namespace mnist::nvml
