// NVML (the NVIDIA Management Library, libnvidia-ml.so.1, installed with the driver) loaded at run
// time, so mnist-train starts where it is missing. Every reading says whether it worked, was not
// supported (the GPU or driver lacks it, or the entry point is absent) or failed; nothing here
// throws to its caller. src/gpu/health.h turns the readings into the verdict's checks.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

// NVML's opaque handles (src/gpu/nvml_abi.h).
struct nvmlDevice_st;
struct nvmlEventSet_st;

namespace mnist::nvml {

// The library dlopen loads: "libnvidia-ml.so.1", or, for tests only, the path in the environment
// variable MNIST_TEST_NVML_LIBRARY (a stand-in NVML; tests/health/fake_nvml.cpp).
std::string library_path();

enum class ReadStatus { kOk, kNotSupported, kFailed };

template <typename T>
struct Reading {
  ReadStatus status = ReadStatus::kNotSupported;
  T value{};
  std::string error;  // why it is not supported or failed (NVML's error string, a missing symbol)
  bool ok() const { return status == ReadStatus::kOk; }
};

struct RemappedRows {                       // Ampere and newer (nvmlDeviceGetRemappedRows)
  unsigned corrected = 0, uncorrected = 0;  // rows remapped for correctable/uncorrectable errors
  bool pending = false;                     // a remap waits for a GPU reset
  bool failed = false;                      // a remap has failed (no spare row left)
};

struct NvLinks {
  unsigned active = 0;
  std::vector<unsigned> down;  // link numbers that exist but are not active
};

// The cheap readings, taken every sampling interval while the GPU trains.
struct Sample {
  Reading<unsigned long long> clock_event_reasons;  // nvmlClocksEventReason* bits
  Reading<unsigned> temperature_c;                  // GPU die sensor
  Reading<unsigned> power_mw;
  Reading<unsigned> pcie_generation, pcie_width;  // current link
  Reading<unsigned> sm_clock_mhz;
};

// Everything read from one GPU at one moment.
struct DeviceReading {
  Sample sample;
  Reading<std::string> name, uuid;
  Reading<bool> ecc_enabled;  // current ECC mode
  Reading<unsigned long long> ecc_corrected_volatile, ecc_uncorrected_volatile;
  Reading<unsigned long long> ecc_corrected_aggregate, ecc_uncorrected_aggregate;
  Reading<bool> retired_pages_pending;  // before Ampere
  Reading<unsigned> retired_pages;      // before Ampere: both causes together
  Reading<RemappedRows> remapped_rows;  // Ampere and newer
  Reading<unsigned> slowdown_temperature_c, shutdown_temperature_c;
  Reading<unsigned> power_limit_mw;  // enforced
  // pcie_max_generation is the link's (the lower of the GPU's and the slot's);
  // pcie_gpu_max_generation the GPU's own.
  Reading<unsigned> pcie_max_generation, pcie_gpu_max_generation, pcie_max_width;
  Reading<NvLinks> nvlinks;  // not supported: the GPU has no NVLink
  Reading<unsigned> sm_max_clock_mhz, memory_clock_mhz, memory_max_clock_mhz;
};

// One event from an event set: an Xid critical error or a double-bit ECC error.
struct Event {
  nvmlDevice_st* device = nullptr;
  bool xid = false;             // nvmlEventTypeXidCriticalError; else a double-bit ECC error
  unsigned long long data = 0;  // the Xid number (999: unknown)
};

struct Api;  // the loaded library and its entry points (nvml.cpp)

// The library, loaded and initialised (nvmlInit_v2) for the object's lifetime; nvmlShutdown and
// dlclose run when the last Nvml or EventSet sharing it goes. Thread-safe (NVML is).
class Nvml {
 public:
  Nvml();  // from library_path()
  explicit Nvml(const std::string& library);

  bool available() const { return api_ != nullptr; }
  const std::string& unavailable_reason() const { return unavailable_; }

  Reading<std::string> driver_version() const;
  // The device at a PCI bus id as CUDA writes it ("0000:1a:00.0", cudaDeviceGetPCIBusId; see
  // src/gpu/device.h DeviceInfo::pci_bus_id).
  Reading<nvmlDevice_st*> device(const std::string& pci_bus_id) const;
  DeviceReading read(nvmlDevice_st* device) const;
  Sample sample(nvmlDevice_st* device) const;

 private:
  friend class EventSet;
  std::shared_ptr<const Api> api_;
  std::string unavailable_;
};

// An NVML event set watching devices for Xid critical errors and double-bit ECC errors (the
// events that mean the hardware, not the program, failed), freed by its destructor.
class EventSet {
 public:
  EventSet(const Nvml& nvml, const std::vector<nvmlDevice_st*>& devices);
  ~EventSet();
  EventSet(const EventSet&) = delete;
  EventSet& operator=(const EventSet&) = delete;

  // Ok when every device is registered; not supported or failed (with why) otherwise.
  const Reading<bool>& watching() const { return watching_; }
  // The next event, waiting up to timeout_ms; nothing on a timeout or an error.
  std::optional<Event> wait(unsigned timeout_ms);

 private:
  std::shared_ptr<const Api> api_;
  nvmlEventSet_st* set_ = nullptr;
  Reading<bool> watching_;
};

}  // namespace mnist::nvml
