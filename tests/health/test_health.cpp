// The GPU health layer (src/gpu/health.h) against the stand-in NVML (fake_nvml.cpp): each
// scenario's failing check, the unavailable cases, and the sampling thread. No GPU needed.
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "gpu/health.h"
#include "gpu/nvml.h"

namespace mnist::health {
namespace {

constexpr const char* kBusId = "0000:1a:00.0";

class HealthTest : public ::testing::Test {
 protected:
  void SetUp() override { use(FAKE_NVML_LIBRARY, "healthy"); }
  void TearDown() override {
    unsetenv("MNIST_TEST_NVML_LIBRARY");
    unsetenv("FAKE_NVML_SCENARIO");
  }
  static void use(const char* library, const char* scenario) {
    setenv("MNIST_TEST_NVML_LIBRARY", library, 1);
    setenv("FAKE_NVML_SCENARIO", scenario, 1);
  }
  static std::vector<Check> checks_of(const char* scenario, const Thresholds& thresholds = {},
                                      const char* library = FAKE_NVML_LIBRARY) {
    use(library, scenario);
    Monitor monitor({kBusId}, thresholds);
    auto gpus = monitor.finish();
    EXPECT_EQ(gpus.size(), 1u);
    return gpus.empty() ? std::vector<Check>{} : gpus[0].checks;
  }
};

const Check* find(const std::vector<Check>& checks, const std::string& name) {
  for (const auto& check : checks)
    if (check.name == name) return &check;
  return nullptr;
}

std::string listing(const std::vector<Check>& checks) {
  std::string text;
  for (const auto& c : checks)
    text += c.name + "=" + status_name(c.status) + " (" + c.detail + ")\n";
  return text;
}

TEST_F(HealthTest, LibraryPathIsNvmlUnlessTheTestVariableIsSet) {
  EXPECT_EQ(nvml::library_path(), FAKE_NVML_LIBRARY);
  unsetenv("MNIST_TEST_NVML_LIBRARY");
  EXPECT_EQ(nvml::library_path(), "libnvidia-ml.so.1");
}

TEST_F(HealthTest, HealthyGpuPassesEveryCheck) {
  use(FAKE_NVML_LIBRARY, "healthy");
  Monitor monitor({kBusId});
  const auto gpus = monitor.finish();
  ASSERT_EQ(gpus.size(), 1u);
  EXPECT_EQ(gpus[0].pci_bus_id, kBusId);
  EXPECT_EQ(gpus[0].end.name.value, "Fake NVIDIA H200");
  EXPECT_EQ(gpus[0].end.uuid.value, std::string("GPU-fake-") + kBusId);
  EXPECT_EQ(gpus[0].status(), Status::kPass);
  EXPECT_EQ(gpus[0].checks.size(), 15u) << listing(gpus[0].checks);
  for (const auto& check : gpus[0].checks)
    EXPECT_EQ(check.status, Status::kPass) << check.name << ": " << check.detail;
  EXPECT_EQ(monitor.nvml().driver_version().value, "580.00.fake");
}

struct Fault {
  const char* scenario;
  std::vector<std::pair<const char*, Status>> checks;  // the checks that do not pass
};

class FaultTest : public HealthTest, public ::testing::WithParamInterface<Fault> {};

// Each fault shows in its checks, and only there: every other check passes.
TEST_P(FaultTest, ShowsInItsChecksOnly) {
  const Fault& fault = GetParam();
  const auto checks = checks_of(fault.scenario);
  for (const auto& [name, status] : fault.checks) {
    const Check* check = find(checks, name);
    ASSERT_NE(check, nullptr) << name << "\n" << listing(checks);
    EXPECT_EQ(check->status, status) << name << ": " << check->detail;
    EXPECT_FALSE(check->detail.empty());
  }
  for (const auto& check : checks) {
    bool expected = false;
    for (const auto& [name, status] : fault.checks) expected |= check.name == name;
    if (!expected) {
      EXPECT_EQ(check.status, Status::kPass) << check.name << ": " << check.detail;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Scenarios, FaultTest,
    ::testing::Values(
        Fault{"ecc_uncorrected", {{"ecc_uncorrected_volatile", Status::kFail}}},
        Fault{"ecc_corrected_new", {{"ecc_corrected_new", Status::kWarn}}},
        Fault{"pending_remap", {{"remapped_rows_pending", Status::kFail}}},
        Fault{"remap_failed", {{"remapped_rows_failed", Status::kFail}}},
        Fault{"retired_pending", {{"retired_pages_pending", Status::kFail}}},
        Fault{"thermal_throttle",
              {{"clock_events_thermal", Status::kFail}, {"temperature", Status::kFail}}},
        Fault{"power_cap", {{"clock_events_power", Status::kWarn}}},
        Fault{"hot", {{"temperature", Status::kWarn}}},
        Fault{"pcie_x8_gen3", {{"pcie_width", Status::kFail}, {"pcie_generation", Status::kFail}}},
        Fault{"nvlink_down", {{"nvlink_down", Status::kFail}}},
        Fault{"xid", {{"xid_events", Status::kFail}}}),
    [](const auto& test) { return std::string(test.param.scenario); });

TEST_F(HealthTest, FaultValuesAndThresholdsAreReported) {
  const auto pcie = checks_of("pcie_x8_gen3");
  const Check* width = find(pcie, "pcie_width");
  ASSERT_NE(width, nullptr);
  EXPECT_EQ(std::get<double>(width->value), 8.0);
  EXPECT_EQ(width->threshold, 16.0);
  EXPECT_EQ(width->unit, "lanes");
  const auto links = checks_of("nvlink_down");
  const Check* link = find(links, "nvlink_down");
  ASSERT_NE(link, nullptr);
  EXPECT_EQ(std::get<double>(link->value), 1.0);
  EXPECT_NE(link->detail.find("links 3 of 18 down"), std::string::npos) << link->detail;
  const auto events = checks_of("xid");
  const Check* xid = find(events, "xid_events");
  ASSERT_NE(xid, nullptr);
  EXPECT_NE(xid->detail.find("Xid 79"), std::string::npos) << xid->detail;
  const auto throttled = checks_of("thermal_throttle");
  const Check* thermal = find(throttled, "clock_events_thermal");
  ASSERT_NE(thermal, nullptr);
  EXPECT_EQ(std::get<std::string>(thermal->value), "hw_thermal_slowdown");
}

// A link below its top generation at the idle start reading, at the top once busy, is healthy.
TEST_F(HealthTest, IdleLinkBelowTopGenerationIsNoFault) {
  const auto checks = checks_of("idle_link");
  const Check* generation = find(checks, "pcie_generation");
  ASSERT_NE(generation, nullptr);
  EXPECT_EQ(generation->status, Status::kPass) << generation->detail;
  EXPECT_EQ(std::get<double>(generation->value), 5.0);
}

TEST_F(HealthTest, SeverityTurnsAFailureIntoAWarning) {
  Thresholds thresholds;
  thresholds.severity["pcie_width"] = Severity::kWarn;
  const auto checks = checks_of("pcie_x8_gen3", thresholds);
  ASSERT_NE(find(checks, "pcie_width"), nullptr);
  EXPECT_EQ(find(checks, "pcie_width")->status, Status::kWarn);
  EXPECT_NE(find(checks, "pcie_width")->detail.find("warn only"), std::string::npos);
  EXPECT_EQ(find(checks, "pcie_generation")->status, Status::kFail);
}

TEST_F(HealthTest, TemperatureMarginIsConfigurable) {
  Thresholds narrow;
  narrow.temperature_margin_c = 2;  // 84 °C, slowdown at 87 °C
  const auto checks = checks_of("hot", narrow);
  const Check* temperature = find(checks, "temperature");
  ASSERT_NE(temperature, nullptr);
  EXPECT_EQ(temperature->status, Status::kPass) << temperature->detail;
  EXPECT_EQ(temperature->threshold, 85.0);
}

void expect_unavailable(const std::vector<Check>& checks, const std::string& why) {
  ASSERT_EQ(checks.size(), 1u) << listing(checks);
  EXPECT_EQ(checks[0].name, "nvml");
  EXPECT_EQ(checks[0].status, Status::kUnavailable);
  EXPECT_EQ(checks[0].detail.rfind("health not available: ", 0), 0u) << checks[0].detail;
  EXPECT_NE(checks[0].detail.find(why), std::string::npos) << checks[0].detail;
}

TEST_F(HealthTest, MissingLibraryIsUnavailable) {
  const std::string missing = ::testing::TempDir() + "no-such-libnvidia-ml.so.1";
  expect_unavailable(checks_of("healthy", {}, missing.c_str()), "no-such-libnvidia-ml.so.1");
}

TEST_F(HealthTest, FailedInitIsUnavailable) {
  expect_unavailable(checks_of("init_fails"), "nvmlInit_v2: Driver Not Loaded");
}

TEST_F(HealthTest, UnknownBusIdIsUnavailable) {
  expect_unavailable(checks_of("no_device"), std::string("no NVML device at PCI ") + kBusId);
}

TEST_F(HealthTest, NotSupportedReadingsAreUnavailableNeverFailures) {
  use(FAKE_NVML_LIBRARY, "not_supported");
  Monitor monitor({kBusId});
  const auto gpus = monitor.finish();
  ASSERT_EQ(gpus.size(), 1u);
  EXPECT_EQ(gpus[0].status(), Status::kUnavailable);
  EXPECT_EQ(gpus[0].checks.size(), 15u);
  for (const auto& check : gpus[0].checks) {
    EXPECT_EQ(check.status, Status::kUnavailable) << check.name;
    EXPECT_NE(check.detail.find("not supported"), std::string::npos) << check.detail;
  }
}

// An old driver's NVML: the optional entry points are absent, so their readings are not supported;
// the clock event reasons come from the old name of the query.
TEST_F(HealthTest, MissingEntryPointsAreNotSupported) {
  const auto checks = checks_of("healthy", {}, FAKE_NVML_MINIMAL_LIBRARY);
  ASSERT_EQ(checks.size(), 15u) << listing(checks);
  for (const auto& check : checks) {
    if (check.name.rfind("clock_events_", 0) == 0) {
      EXPECT_EQ(check.status, Status::kPass) << check.name << ": " << check.detail;
    } else {
      EXPECT_EQ(check.status, Status::kUnavailable) << check.name;
      EXPECT_NE(check.detail.find("is not in this NVML"), std::string::npos) << check.detail;
    }
  }
  const auto throttled = checks_of("thermal_throttle", {}, FAKE_NVML_MINIMAL_LIBRARY);
  const Check* thermal = find(throttled, "clock_events_thermal");
  ASSERT_NE(thermal, nullptr);
  EXPECT_EQ(thermal->status, Status::kFail) << thermal->detail;
}

TEST_F(HealthTest, EventsBelongToTheirGpu) {
  use(FAKE_NVML_LIBRARY, "xid");  // the event is on the first GPU registered
  Monitor monitor({"0000:1a:00.0", "0000:1b:00.0"});
  const auto gpus = monitor.finish();
  ASSERT_EQ(gpus.size(), 2u);
  EXPECT_EQ(find(gpus[0].checks, "xid_events")->status, Status::kFail);
  EXPECT_EQ(find(gpus[1].checks, "xid_events")->status, Status::kPass);
  EXPECT_EQ(gpus[0].status(), Status::kFail);
  EXPECT_EQ(gpus[1].status(), Status::kPass);
}

// A throttle seen only between the start and end readings is caught by the sampling thread.
TEST_F(HealthTest, SamplerCatchesAThrottleBetweenTheReadings) {
  use(FAKE_NVML_LIBRARY, "throttle_once");  // the second clock query only
  Monitor monitor({kBusId});
  void* fake = dlopen(FAKE_NVML_LIBRARY, RTLD_NOW | RTLD_NOLOAD);
  ASSERT_NE(fake, nullptr);
  const auto queries = reinterpret_cast<unsigned (*)()>(dlsym(fake, "fake_nvml_clock_queries"));
  ASSERT_NE(queries, nullptr);
  // Waits for the sampler's second sample; the deadline only keeps a broken sampler from hanging.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (queries() < 3 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  dlclose(fake);
  const auto gpus = monitor.finish();
  ASSERT_EQ(gpus.size(), 1u);
  EXPECT_GE(gpus[0].during.samples, 4u);
  EXPECT_EQ(find(gpus[0].checks, "clock_events_thermal")->status, Status::kFail);
}

TEST_F(HealthTest, FinishTwiceGivesTheSameAnswer) {
  use(FAKE_NVML_LIBRARY, "xid");
  Monitor monitor({kBusId});
  const auto first = monitor.finish();
  const auto second = monitor.finish();
  ASSERT_EQ(first.size(), 1u);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(find(second[0].checks, "xid_events")->status, Status::kFail);
}

// The destructor stops the sampler whether it waits on events or sleeps (no event set).
TEST_F(HealthTest, DestructorStopsTheSamplerWithoutFinish) {
  for (const char* scenario : {"healthy", "not_supported"}) {
    use(FAKE_NVML_LIBRARY, scenario);
    Monitor monitor({kBusId});
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

TEST(HealthStatus, NamesAndWorstOf) {
  EXPECT_STREQ(status_name(Status::kPass), "pass");
  EXPECT_STREQ(status_name(Status::kWarn), "warn");
  EXPECT_STREQ(status_name(Status::kFail), "fail");
  EXPECT_STREQ(status_name(Status::kUnavailable), "unavailable");
  GpuHealth gpu;
  EXPECT_EQ(gpu.status(), Status::kUnavailable);
  gpu.checks = {unavailable_check("x")};
  EXPECT_EQ(gpu.status(), Status::kUnavailable);
  gpu.checks.push_back({"a", 0.0, std::nullopt, "", Status::kPass, ""});
  EXPECT_EQ(gpu.status(), Status::kPass);
  gpu.checks.push_back({"b", 0.0, std::nullopt, "", Status::kWarn, ""});
  EXPECT_EQ(gpu.status(), Status::kWarn);
  gpu.checks.push_back({"c", 0.0, std::nullopt, "", Status::kFail, ""});
  EXPECT_EQ(gpu.status(), Status::kFail);
}

}  // namespace
}  // namespace mnist::health
