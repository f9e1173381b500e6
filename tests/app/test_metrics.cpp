// The verdict as Prometheus metrics (app/metrics.h): label escaping, the text format's structure
// (HELP and TYPE before each family's samples, one series per label set), and the values a fleet
// alerts on. Prometheus' own parser (promtool check metrics) reads the files the binary writes in
// tests/e2e/verdict.sh and metrics.sh.
#include <gtest/gtest.h>

#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "app/metrics.h"

namespace mnist {
namespace {

using json = nlohmann::ordered_json;

TEST(Metrics, LabelValuesEscapeBackslashQuoteAndNewline) {
  EXPECT_EQ(escape_label_value("plain-node.1"), "plain-node.1");
  EXPECT_EQ(escape_label_value(R"(a\b)"), R"(a\\b)");
  EXPECT_EQ(escape_label_value(R"(say "hi")"), R"(say \"hi\")");
  EXPECT_EQ(escape_label_value("two\nlines"), R"(two\nlines)");
  EXPECT_EQ(escape_label_value("\\\"\n"), R"(\\\"\n)");
  EXPECT_EQ(escape_label_value("tab\there"), "tab\there") << "only the three are escaped";
}

json passed_verdict() {
  return json::parse(R"json({
    "version": "1.0.0", "verdict": "passed", "reason": "ok", "exit_code": 0, "exit_name": "ok",
    "node": "gpu-node-7", "mode": "train", "backend": "cuda",
    "checks": [
      {"gpu": 0, "name": "temperature", "value": 61, "threshold": 85, "unit": "°C",
       "status": "pass", "detail": "peak 61 °C"},
      {"gpu": 0, "name": "nvlink_down", "value": "none", "threshold": null, "unit": "",
       "status": "unavailable", "detail": "no NVLink"},
      {"gpu": null, "name": "accuracy", "value": 0.9555, "threshold": null, "unit": "",
       "status": "pass", "detail": "final test accuracy 0.9555 (no floor set)"}
    ],
    "devices": {"kind": "gpu", "used": [
      {"ordinal": 0, "name": "NVIDIA H200", "pci_bus_id": "0000:00:06.0",
       "uuid": "GPU-8f6e1a2b-0c3d-4e5f-9a8b-7c6d5e4f3a2b"}]},
    "training": {"final_accuracy": 0.9555, "images_per_second": 1234000.5}
  })json");
}

const auto kFinished =
    std::chrono::system_clock::time_point(std::chrono::milliseconds(1700000000250));

// The samples of the text, by their full series name ("name{labels}"), and the families in order.
struct Parsed {
  std::map<std::string, std::string> samples;
  std::vector<std::string> families;
};

Parsed parse_text(const std::string& text) {
  Parsed p;
  std::istringstream in(text);
  std::string help_of, type_of;
  const std::regex help(R"(# HELP ([a-z_]+) \S.*)"), type(R"(# TYPE ([a-z_]+) gauge)");
  const std::regex sample(R"re(([a-z_]+)(\{([a-z_]+="([^"\\]|\\.)*",?)*\}) (\S+))re");
  std::set<std::string> seen;
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (std::regex_match(line, m, help)) {
      help_of = m[1];
      EXPECT_TRUE(seen.insert(help_of).second) << "family twice: " << help_of;
      p.families.push_back(help_of);
    } else if (std::regex_match(line, m, type)) {
      EXPECT_EQ(m[1], help_of) << "TYPE right after its HELP";
      type_of = m[1];
    } else if (std::regex_match(line, m, sample)) {
      EXPECT_EQ(m[1], type_of) << "a sample outside its family: " << line;
      const std::string series = m[1].str() + m[2].str();
      EXPECT_TRUE(p.samples.emplace(series, m[5]).second) << "series twice: " << series;
    } else {
      ADD_FAILURE() << "not a line of the text format: '" << line << "'";
    }
  }
  EXPECT_EQ(text.back(), '\n');
  return p;
}

TEST(Metrics, APassingRun) {
  const Parsed p = parse_text(metrics_text(passed_verdict(), kFinished));
  const std::string node = R"(node="gpu-node-7")";
  EXPECT_EQ(p.samples.at("mnist_train_passed{" + node + "}"), "1");
  EXPECT_EQ(p.samples.at("mnist_train_exit_code{" + node + "}"), "0");
  EXPECT_EQ(p.samples.at("mnist_train_test_accuracy{" + node + "}"), "0.9555");
  EXPECT_EQ(p.samples.at("mnist_train_images_per_second{" + node + "}"), "1234000.5");
  EXPECT_EQ(p.samples.at("mnist_train_last_run_timestamp_seconds{" + node + "}"), "1700000000.25");
  EXPECT_EQ(
      p.samples.at("mnist_train_info{" + node +
                   R"(,version="1.0.0",reason="ok",exit_name="ok",mode="train",backend="cuda"})"),
      "1");
  const std::string gpu0 =
      node + R"(,gpu="0",uuid="GPU-8f6e1a2b-0c3d-4e5f-9a8b-7c6d5e4f3a2b",model="NVIDIA H200")";
  EXPECT_EQ(p.samples.at("mnist_train_gpu_info{" + gpu0 + R"(,pci_bus_id="0000:00:06.0"})"), "1");
  EXPECT_EQ(p.samples.at("mnist_train_check_value{" + gpu0 + R"(,check="temperature"})"), "61");
  EXPECT_EQ(p.samples.at("mnist_train_check_threshold{" + gpu0 + R"(,check="temperature"})"), "85");
  EXPECT_EQ(p.samples.at("mnist_train_check_passed{" + gpu0 + R"(,check="temperature"})"), "1");
  EXPECT_EQ(
      p.samples.at("mnist_train_check_status{" + gpu0 + R"(,check="temperature",status="pass"})"),
      "1");
  EXPECT_EQ(
      p.samples.at("mnist_train_check_status{" + gpu0 + R"(,check="temperature",status="fail"})"),
      "0");
  // A value that is not a number has no value sample; its status still has one.
  EXPECT_EQ(p.samples.count("mnist_train_check_value{" + gpu0 + R"(,check="nvlink_down"})"), 0u);
  EXPECT_EQ(p.samples.at("mnist_train_check_passed{" + gpu0 + R"(,check="nvlink_down"})"), "0");
  EXPECT_EQ(p.samples.at("mnist_train_check_status{" + gpu0 +
                         R"(,check="nvlink_down",status="unavailable"})"),
            "1");
  // A run-level check: empty GPU labels.
  const std::string run = node + R"(,gpu="",uuid="",model="",check="accuracy")";
  EXPECT_EQ(p.samples.at("mnist_train_check_value{" + run + "}"), "0.9555");
  EXPECT_EQ(p.samples.count("mnist_train_check_threshold{" + run + "}"), 0u);
  EXPECT_EQ(p.families, (std::vector<std::string>{
                            "mnist_train_info", "mnist_train_passed", "mnist_train_exit_code",
                            "mnist_train_last_run_timestamp_seconds", "mnist_train_test_accuracy",
                            "mnist_train_images_per_second", "mnist_train_gpu_info",
                            "mnist_train_check_value", "mnist_train_check_threshold",
                            "mnist_train_check_passed", "mnist_train_check_status"}));
}

TEST(Metrics, AFailedRunWithoutTraining) {
  json v = passed_verdict();
  v["verdict"] = "failed";
  v["exit_code"] = 4;
  v["reason"] = "no_device";
  v["training"] = nullptr;
  v["checks"] = json::array();
  v["devices"]["used"] = json::array();
  const Parsed p = parse_text(metrics_text(v, kFinished));
  EXPECT_EQ(p.samples.at(R"(mnist_train_passed{node="gpu-node-7"})"), "0");
  EXPECT_EQ(p.samples.at(R"(mnist_train_exit_code{node="gpu-node-7"})"), "4");
  for (const auto& [series, value] : p.samples) {
    EXPECT_EQ(series.find("accuracy"), std::string::npos) << series;
    EXPECT_EQ(series.find("check"), std::string::npos) << series;
  }
}

TEST(Metrics, LabelsAreEscapedAndSeriesUnique) {
  json v = passed_verdict();
  v["node"] = R"(odd"node\x)";
  v["devices"]["used"][0]["name"] = "GPU \"X\"\nrev 2";
  v["checks"].push_back(v["checks"][0]);  // the same check twice: the first one counts
  v["checks"].back()["value"] = 99;
  const std::string text = metrics_text(v, kFinished);
  const Parsed p = parse_text(text);
  EXPECT_EQ(p.samples.at(R"(mnist_train_passed{node="odd\"node\\x"})"), "1");
  EXPECT_NE(text.find(R"(model="GPU \"X\"\nrev 2")"), std::string::npos) << text;
  const std::string gpu0 =
      R"(node="odd\"node\\x",gpu="0",uuid="GPU-8f6e1a2b-0c3d-4e5f-9a8b-7c6d5e4f3a2b",)"
      R"(model="GPU \"X\"\nrev 2",check="temperature")";
  EXPECT_EQ(p.samples.at("mnist_train_check_value{" + gpu0 + "}"), "61");
}

TEST(Metrics, NonFiniteValuesAsPrometheusWritesThem) {
  json v = passed_verdict();
  v["training"]["images_per_second"] = 1e300 * 1e300;  // +Inf; nlohmann keeps it as a double
  const Parsed p = parse_text(metrics_text(v, kFinished));
  EXPECT_EQ(p.samples.at(R"(mnist_train_images_per_second{node="gpu-node-7"})"), "+Inf");
}

}  // namespace
}  // namespace mnist
