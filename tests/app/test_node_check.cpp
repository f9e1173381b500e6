// The node check's decision (app/node_check.h) from NVML readings to exit code, reason and check:
// the GPU is the stand-in NVML (tests/health/fake_nvml.cpp, a scenario per fault) and injected
// speed figures, so the whole path from a reading to the verdict runs without a GPU.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#include "app/cli.h"
#include "app/node_check.h"
#include "app/report.h"
#include "error.h"

namespace mnist {
namespace {

constexpr const char* kBusId = "0000:1a:00.0";

class NodeCheckTest : public ::testing::Test {
 protected:
  void TearDown() override {
    unsetenv("MNIST_TEST_NVML_LIBRARY");
    unsetenv("FAKE_NVML_SCENARIO");
  }

  // A GPU run's record whose GPU 0 (kBusId) was read through `library` in `scenario`.
  RunRecord record_with(const char* library, const char* scenario,
                        const std::vector<std::string>& warn_only = {}) {
    setenv("MNIST_TEST_NVML_LIBRARY", library, 1);
    setenv("FAKE_NVML_SCENARIO", scenario, 1);
    const char* argv[] = {"mnist-train", "--backend", "cuda"};
    RunRecord record(3, argv);
    record.options = *parse_command_line(3, argv);
    record.backend = BackendKind::kCuda;
    health::Thresholds thresholds;
    for (const std::string& name : warn_only) thresholds.severity[name] = health::Severity::kWarn;
    health::Monitor monitor({kBusId}, thresholds);
    record_health(monitor.finish(), {0}, record);
    return record;
  }

  // What the run reports when throw_if_a_check_failed decides: the outcome as main makes it.
  static Outcome decide(RunRecord& record) {
    try {
      throw_if_a_check_failed(record);
    } catch (const Error& e) {
      record.reason = e.reason();
      return {e.code(), e.what()};
    }
    return {};
  }
};

struct Fault {
  const char* scenario;
  const char* check;
};

class NodeCheckFault : public NodeCheckTest, public ::testing::WithParamInterface<Fault> {};

TEST_P(NodeCheckFault, FailsTheRunWithExitFourReasonUnhealthyAndNamesTheCheck) {
  RunRecord record = record_with(FAKE_NVML_LIBRARY, GetParam().scenario);
  const Outcome outcome = decide(record);
  EXPECT_EQ(outcome.code, ExitCode::kGpuUnusable);
  EXPECT_NE(outcome.message.find(GetParam().check), std::string::npos) << outcome.message;
  EXPECT_EQ(run_reason(record, outcome), "unhealthy");
  const auto verdict = verdict_json(record, outcome, std::chrono::system_clock::now());
  EXPECT_EQ(verdict["reason"], "unhealthy");
  EXPECT_EQ(verdict["exit_name"], "gpu_unusable");
  bool listed = false;
  for (const auto& check : verdict["checks"])
    listed |= check["name"] == GetParam().check && check["status"] == "fail" && check["gpu"] == 0;
  EXPECT_TRUE(listed) << verdict["checks"].dump();
  const std::string line = termination_line(record, outcome);
  EXPECT_NE(line.find(std::string("check=GPU 0 ") + GetParam().check), std::string::npos) << line;
  EXPECT_NE(line.find("reason=unhealthy"), std::string::npos) << line;
}

INSTANTIATE_TEST_SUITE_P(StandInNvml, NodeCheckFault,
                         ::testing::Values(Fault{"ecc_uncorrected", "ecc_uncorrected_volatile"},
                                           Fault{"pending_remap", "remapped_rows_pending"},
                                           Fault{"thermal_throttle", "clock_events_thermal"},
                                           Fault{"pcie_x8_gen3", "pcie_generation"},
                                           Fault{"xid", "xid_events"}),
                         [](const auto& test) { return std::string(test.param.scenario); });

TEST_F(NodeCheckTest, PcieX8Gen3FailsBothLinkChecks) {
  RunRecord record = record_with(FAKE_NVML_LIBRARY, "pcie_x8_gen3");
  int failed = 0;
  for (const RunCheck& c : record.gpu_checks)
    failed += (c.check.name == "pcie_width" || c.check.name == "pcie_generation") &&
              c.check.status == health::Status::kFail;
  EXPECT_EQ(failed, 2);
}

TEST_F(NodeCheckTest, AHealthyGpuPasses) {
  RunRecord record = record_with(FAKE_NVML_LIBRARY, "healthy");
  EXPECT_EQ(decide(record).code, ExitCode::kOk);
  EXPECT_FALSE(record.gpu_checks.empty());
}

TEST_F(NodeCheckTest, AMissingNvmlSaysHealthNotAvailableAndPasses) {
  RunRecord record = record_with("/nonexistent/libnvidia-ml.so.1", "healthy");
  EXPECT_EQ(decide(record).code, ExitCode::kOk);
  ASSERT_EQ(record.gpu_checks.size(), 1u);
  EXPECT_EQ(record.gpu_checks[0].check.name, "nvml");
  EXPECT_EQ(record.gpu_checks[0].check.status, health::Status::kUnavailable);
  EXPECT_NE(record.gpu_checks[0].check.detail.find("health not available"), std::string::npos);
}

TEST_F(NodeCheckTest, WarnOnlyTurnsTheFailureIntoAWarning) {
  RunRecord record = record_with(FAKE_NVML_LIBRARY, "pending_remap", {"remapped_rows_pending"});
  EXPECT_EQ(decide(record).code, ExitCode::kOk);
}

TEST_F(NodeCheckTest, ASlowGpuFailsWithReasonSlow) {
  const char* argv[] = {"mnist-train"};
  RunRecord record(1, argv);
  record.options = *parse_command_line(1, argv);
  SpeedProbeResult half;  // an H200's promise, measured at half its clock
  half.name = "NVIDIA H200";
  half.fp32_tflops = {66.9, 30.0, ""};
  half.memory_gbps = {4800, 4200, ""};
  for (health::Check& check : evaluate_speed({half}, 0)) record.gpu_checks.push_back({0, check});
  const Outcome outcome = decide(record);
  EXPECT_EQ(outcome.code, ExitCode::kGpuUnusable);
  EXPECT_EQ(record.reason, "slow");
  EXPECT_EQ(run_reason(record, outcome), "slow");
  EXPECT_NE(outcome.message.find("fp32_throughput"), std::string::npos) << outcome.message;
}

TEST(WarnOnly, OnlyNamesOfChecksThatCanFail) {
  EXPECT_NO_THROW(check_warn_only({"pcie_generation", "nvlink_down", "fp32_throughput"}));
  try {
    check_warn_only({"pcie_generation", "pcie_gen"});
    FAIL() << "pcie_gen accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kBadArguments);
    EXPECT_NE(std::string(e.what()).find("--warn_only pcie_gen"), std::string::npos);
  }
}

}  // namespace
}  // namespace mnist
