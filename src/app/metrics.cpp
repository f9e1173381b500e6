#include "app/metrics.h"

#include <charconv>
#include <cmath>
#include <set>
#include <utility>
#include <vector>

namespace mnist {
namespace {

using json = nlohmann::ordered_json;
using Labels = std::vector<std::pair<std::string, std::string>>;

// Go's ParseFloat reads what Prometheus reads: the shortest round-trip digits, NaN, +Inf, -Inf.
std::string sample_value(double x) {
  if (std::isnan(x)) return "NaN";
  if (std::isinf(x)) return x > 0 ? "+Inf" : "-Inf";
  char text[32];
  const auto end = std::to_chars(text, text + sizeof text, x).ptr;
  return std::string(text, end);
}

// A string field of `doc`, or "" when it is absent or not a string.
std::string text_of(const json& doc, const char* key) {
  return doc.is_object() && doc.contains(key) && doc[key].is_string() ? doc[key].get<std::string>()
                                                                      : "";
}

// One family: its HELP and TYPE lines, then its samples.
class Family {
 public:
  Family(std::string name, std::string help) : name_(std::move(name)), help_(std::move(help)) {}

  void add(const Labels& labels, double value) {
    std::string line = name_ + "{";
    for (std::size_t i = 0; i < labels.size(); ++i) {
      line +=
          (i ? "," : "") + labels[i].first + "=\"" + escape_label_value(labels[i].second) + "\"";
    }
    samples_ += line + "} " + sample_value(value) + "\n";
  }

  std::string text() const {
    return "# HELP " + name_ + " " + help_ + "\n# TYPE " + name_ + " gauge\n" + samples_;
  }

 private:
  std::string name_, help_, samples_;
};

}  // namespace

std::string escape_label_value(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string metrics_text(const json& v, std::chrono::system_clock::time_point finished_at) {
  const Labels node = {{"node", text_of(v, "node")}};
  const bool passed = text_of(v, "verdict") == "passed";

  Family info("mnist_train_info", "The last mnist-train run on this node: version and outcome.");
  info.add({node[0],
            {"version", text_of(v, "version")},
            {"reason", text_of(v, "reason")},
            {"exit_name", text_of(v, "exit_name")},
            {"mode", text_of(v, "mode")},
            {"backend", text_of(v, "backend")}},
           1);
  Family pass("mnist_train_passed", "Whether the last mnist-train run passed (1) or failed (0).");
  pass.add(node, passed ? 1 : 0);
  Family exit_code("mnist_train_exit_code", "The exit code of the last mnist-train run.");
  exit_code.add(node, v.value("exit_code", 1));
  Family finished("mnist_train_last_run_timestamp_seconds",
                  "When the last mnist-train run finished, in seconds since the Unix epoch.");
  // Whole milliseconds over 1000: the nearest double to the time written (1700000000.25).
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(finished_at.time_since_epoch()).count();
  finished.add(node, double(ms) / 1000.0);

  Family accuracy("mnist_train_test_accuracy",
                  "Final test accuracy of the last mnist-train run (0 to 1).");
  Family speed("mnist_train_images_per_second",
               "Training images per second of the last mnist-train run.");
  const json training = v.value("training", json());
  if (training.is_object()) {
    if (training.contains("final_accuracy") && training["final_accuracy"].is_number())
      accuracy.add(node, training["final_accuracy"].get<double>());
    if (training.contains("images_per_second") && training["images_per_second"].is_number())
      speed.add(node, training["images_per_second"].get<double>());
  }

  // The GPUs used, by ordinal: each check's uuid and model labels.
  Family gpu_info("mnist_train_gpu_info", "A GPU the last mnist-train run used.");
  std::vector<json> used;
  const json devices = v.value("devices", json());
  if (devices.is_object() && devices.contains("used") && devices["used"].is_array())
    for (const json& d : devices["used"]) used.push_back(d);
  for (const json& d : used) {
    gpu_info.add({node[0],
                  {"gpu", std::to_string(d.value("ordinal", 0))},
                  {"uuid", text_of(d, "uuid")},
                  {"model", text_of(d, "name")},
                  {"pci_bus_id", text_of(d, "pci_bus_id")}},
                 1);
  }

  Family value("mnist_train_check_value", "The value a check of the last mnist-train run read.");
  Family threshold("mnist_train_check_threshold",
                   "Where a check of the last mnist-train run warns or fails.");
  Family check_passed("mnist_train_check_passed",
                      "Whether a check of the last mnist-train run passed (1) or not (0).");
  Family status(
      "mnist_train_check_status",
      "A check's status in the last mnist-train run: 1 for its status, 0 for the others.");
  std::set<std::pair<std::string, std::string>> seen;  // (gpu, check): one series each
  const json checks = v.value("checks", json::array());
  for (const json& c : checks.is_array() ? checks : json::array()) {
    if (!c.is_object()) continue;
    std::string gpu, uuid, model;
    if (c.contains("gpu") && c["gpu"].is_number_integer()) {
      const int ordinal = c["gpu"].get<int>();
      gpu = std::to_string(ordinal);
      for (const json& d : used) {
        if (d.value("ordinal", -1) != ordinal) continue;
        uuid = text_of(d, "uuid");
        model = text_of(d, "name");
      }
    }
    const std::string name = text_of(c, "name");
    if (!seen.insert({gpu, name}).second) continue;
    const Labels labels = {
        node[0], {"gpu", gpu}, {"uuid", uuid}, {"model", model}, {"check", name}};
    if (c.contains("value") && c["value"].is_number()) value.add(labels, c["value"].get<double>());
    if (c.contains("threshold") && c["threshold"].is_number())
      threshold.add(labels, c["threshold"].get<double>());
    const std::string state = text_of(c, "status");
    check_passed.add(labels, state == "pass" ? 1 : 0);
    for (const char* s : {"pass", "warn", "fail", "unavailable"}) {
      Labels with_status = labels;
      with_status.emplace_back("status", s);
      status.add(with_status, state == s ? 1 : 0);
    }
  }

  std::string text;
  for (const Family* f : {&info, &pass, &exit_code, &finished, &accuracy, &speed, &gpu_info, &value,
                          &threshold, &check_passed, &status})
    text += f->text();
  return text;
}

}  // namespace mnist
