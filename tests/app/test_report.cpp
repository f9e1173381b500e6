// The verdict (result.json, --result_file, --metrics_file), the termination message and the summary
// line: their content, the versioned fields (schema_version, reason, node, checks) against
// docs/result.schema.json, Kubernetes' 4096-byte cap, and the termination-message file's hostile
// cases (missing, a link, a FIFO, a folder, read-only): never created, never written through, never
// waited on.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "app/cli.h"
#include "app/report.h"
#include "error.h"

namespace mnist {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

Options parse(std::vector<const char*> args) {
  args.insert(args.begin(), "mnist-train");
  return *parse_command_line(static_cast<int>(args.size()), args.data());
}

RunRecord record_of(std::vector<const char*> args) {
  std::vector<const char*> argv = {"mnist-train"};
  argv.insert(argv.end(), args.begin(), args.end());
  RunRecord r(static_cast<int>(argv.size()), argv.data());
  r.options = parse(args);
  return r;
}

TrainResult sample_result() {
  TrainResult t;
  t.final_accuracy = 0.9555;
  t.best_accuracy = 0.9561;
  t.best_step = 480;
  t.final_loss = 0.15;
  t.train_steps = 450;
  t.steps_this_run = 450;
  t.seconds = 0.058;
  t.images_per_second = 1.234e6;
  return t;
}

DeviceInfo h200() {
  DeviceInfo d;
  d.ordinal = 0;
  d.name = "NVIDIA H200";
  d.major = 9;
  d.minor = 0;
  d.multiprocessors = 132;
  d.total_memory_bytes = 150109880320ULL;
  d.pci_bus_id = "0000:00:06.0";
  d.uuid = "GPU-8f6e1a2b-0c3d-4e5f-9a8b-7c6d5e4f3a2b";
  return d;
}

// A run that trained on an (invented) H200.
RunRecord gpu_run(std::vector<const char*> args = {"--max_steps", "500"}) {
  RunRecord r = record_of(args);
  r.backend = BackendKind::kCuda;
  r.probe = GpuProbe{1, 13000, 13000, ""};
  r.visible = {h200()};
  r.used = {h200()};
  MnistData data;
  data.train.count = 55000;
  data.validation.count = 5000;
  data.test.count = 10000;
  data.origin = {"mnist",
                 "cache /tmp/tensorflow/input_data",
                 {"/tmp/tensorflow/input_data/train-images-idx3-ubyte.gz"},
                 1.25,
                 9912422};
  r.note_data(data);
  r.training = sample_result();
  return r;
}

const auto kNow = std::chrono::system_clock::now();

TEST(Verdict, PassedTrainingNamesEverything) {
  const json v = verdict_json(gpu_run(), Outcome{}, kNow);
  EXPECT_EQ(v["program"], "mnist-train");
  EXPECT_TRUE(std::regex_match(v["version"].get<std::string>(), std::regex(R"(\d+\.\d+\.\d+)")))
      << v["version"];
  EXPECT_EQ(v["version"], program_version());
  EXPECT_EQ(v["verdict"], "passed");
  EXPECT_EQ(v["exit_code"], 0);
  EXPECT_EQ(v["exit_name"], "ok");
  EXPECT_FALSE(v.contains("error"));
  EXPECT_EQ(v["mode"], "train");
  EXPECT_EQ(v["backend"], "cuda");
  EXPECT_EQ(v["backend_requested"], "auto");
  EXPECT_EQ(v["model"], "mlp");
  EXPECT_EQ(v["batch_size"], 100);
  EXPECT_EQ(v["seed"], 1);
  EXPECT_EQ(v["max_steps"], 500);
  EXPECT_EQ(v["learning_rate"], 0.001) << "the flag as written, not its float's nearest double";
  EXPECT_EQ(v["dropout_keep"], 0.9);
  const std::regex iso(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)");
  EXPECT_TRUE(std::regex_match(v["started_at"].get<std::string>(), iso)) << v["started_at"];
  EXPECT_TRUE(std::regex_match(v["finished_at"].get<std::string>(), iso)) << v["finished_at"];
  EXPECT_EQ(v["command_line"], json({"mnist-train", "--max_steps", "500"}));

  const json& d = v["devices"];
  EXPECT_EQ(d["kind"], "gpu");
  EXPECT_EQ(d["driver_version"], "13.0");
  EXPECT_EQ(d["runtime_version"], "13.0");
  EXPECT_EQ(d["visible_count"], 1);
  ASSERT_EQ(d["used"].size(), 1u);
  const json& gpu = d["used"][0];
  EXPECT_EQ(gpu["name"], "NVIDIA H200");
  EXPECT_EQ(gpu["compute_capability"], "9.0");
  EXPECT_EQ(gpu["total_memory_bytes"], 150109880320ULL);
  EXPECT_EQ(gpu["pci_bus_id"], "0000:00:06.0");
  EXPECT_EQ(gpu["uuid"], "GPU-8f6e1a2b-0c3d-4e5f-9a8b-7c6d5e4f3a2b");
  EXPECT_EQ(d["visible"], json::array({gpu}));

  const json& data = v["dataset"];
  EXPECT_EQ(data["name"], "mnist");
  EXPECT_EQ(data["loaded"], true);
  EXPECT_EQ(data["description"], "cache /tmp/tensorflow/input_data");
  EXPECT_EQ(data["sources"].size(), 1u);
  EXPECT_EQ(data["fetch_seconds"], 1.25);
  EXPECT_EQ(data["downloaded_bytes"], 9912422);
  EXPECT_EQ(data["train_images"], 55000);
  EXPECT_EQ(data["validation_images"], 5000);
  EXPECT_EQ(data["test_images"], 10000);

  const json& t = v["training"];
  EXPECT_EQ(t["final_accuracy"], 0.9555);
  EXPECT_EQ(t["best_accuracy"], 0.9561);
  EXPECT_EQ(t["best_step"], 480);
  EXPECT_EQ(t["train_steps"], 450);
  EXPECT_EQ(t["seconds"], 0.058);
  EXPECT_EQ(t["images_per_second"], 1.234e6);
}

TEST(Verdict, FailureNamesTheExitCodeAndMessage) {
  RunRecord r = record_of({"--backend", "cuda"});
  const json v = verdict_json(r, {ExitCode::kGpuUnusable, "no usable CUDA GPU: ..."}, kNow);
  EXPECT_EQ(v["verdict"], "failed");
  EXPECT_EQ(v["exit_code"], 4);
  EXPECT_EQ(v["exit_name"], "gpu_unusable");
  EXPECT_EQ(v["exit_description"], "GPU unusable");
  EXPECT_EQ(v["error"], "no usable CUDA GPU: ...");
  EXPECT_TRUE(v["backend"].is_null()) << "not resolved";
  EXPECT_EQ(v["devices"]["kind"], "none");
  EXPECT_TRUE(v["training"].is_null());
  EXPECT_EQ(v["dataset"]["loaded"], false);
  EXPECT_EQ(v["dataset"]["name"], "mnist");
}

TEST(Verdict, CpuRunSaysSo) {
  RunRecord r = record_of({"--backend", "cpu", "--fake_data"});
  r.backend = BackendKind::kCpu;
  r.note_data(make_fake_data(1));
  const json v = verdict_json(r, Outcome{}, kNow);
  EXPECT_EQ(v["devices"]["kind"], "cpu");
  EXPECT_EQ(v["devices"]["description"], "CPU backend: no GPU used");
  EXPECT_TRUE(v["devices"]["used"].empty());
  EXPECT_TRUE(v["devices"]["probe"].is_null()) << "CUDA was not asked";
  EXPECT_EQ(v["dataset"]["name"], "synthetic");
  EXPECT_EQ(v["dataset"]["train_images"], kFakeTrainImages);
}

TEST(Verdict, EveryExitCodeHasAName) {
  EXPECT_EQ(exit_code_name(0), "ok");
  EXPECT_EQ(exit_code_name(1), "internal error");
  EXPECT_EQ(exit_code_name(2), "bad arguments");
  EXPECT_EQ(exit_code_name(3), "data unavailable");
  EXPECT_EQ(exit_code_name(4), "GPU unusable");
  EXPECT_EQ(exit_code_name(5), "diverged");
  EXPECT_EQ(exit_code_name(6), "output failed");
  EXPECT_EQ(exit_code_name(7), "data invalid");
  EXPECT_EQ(exit_code_name(130), "interrupted (SIGINT)");
  EXPECT_EQ(exit_code_name(143), "terminated (SIGTERM)");
  EXPECT_EQ(exit_code_name(99), "exit 99");
}

TEST(Verdict, EveryExitCodeHasAToken) {
  EXPECT_EQ(exit_code_token(0), "ok");
  EXPECT_EQ(exit_code_token(1), "internal");
  EXPECT_EQ(exit_code_token(2), "bad_arguments");
  EXPECT_EQ(exit_code_token(3), "data_unavailable");
  EXPECT_EQ(exit_code_token(4), "gpu_unusable");
  EXPECT_EQ(exit_code_token(5), "diverged");
  EXPECT_EQ(exit_code_token(6), "output_failed");
  EXPECT_EQ(exit_code_token(7), "data_invalid");
  EXPECT_EQ(exit_code_token(130), "interrupted");
  EXPECT_EQ(exit_code_token(143), "terminated");
}

constexpr ExitCode kEveryCode[] = {ExitCode::kOk,           ExitCode::kInternal,
                                   ExitCode::kBadArguments, ExitCode::kDataUnavailable,
                                   ExitCode::kGpuUnusable,  ExitCode::kDiverged,
                                   ExitCode::kOutputFailed, ExitCode::kDataInvalid,
                                   ExitCode::kInterrupted,  ExitCode::kTerminated};

TEST(Verdict, VersionedFieldsFirst) {
  RunRecord r = gpu_run();
  r.node = "gpu-node-7";
  const json v = verdict_json(r, Outcome{}, kNow);
  EXPECT_EQ(v["schema_version"], 2);
  EXPECT_EQ(v["schema_version"], kResultSchemaVersion);
  EXPECT_EQ(v["reason"], "ok");
  EXPECT_EQ(v["exit_name"], "ok");
  EXPECT_EQ(v["exit_description"], "ok");
  EXPECT_EQ(v["node"], "gpu-node-7");
  ASSERT_TRUE(v["checks"].is_array());
  const json f = verdict_json(r, {ExitCode::kTerminated, "stopped by SIGTERM"}, kNow);
  EXPECT_EQ(f["reason"], "terminated");
  EXPECT_EQ(f["exit_name"], "terminated");
  EXPECT_EQ(f["exit_description"], "terminated (SIGTERM)");
}

// Each exit code's default reason is its own; a finer one applies only to the code it belongs to.
TEST(RunReason, EachCodeHasItsDefault) {
  const RunRecord r = record_of({});
  const std::map<ExitCode, std::string> expected = {
      {ExitCode::kOk, "ok"},
      {ExitCode::kInternal, "internal"},
      {ExitCode::kBadArguments, "usage"},
      {ExitCode::kDataUnavailable, "data_unavailable"},
      {ExitCode::kGpuUnusable, "cuda_error"},
      {ExitCode::kDiverged, "diverged"},
      {ExitCode::kOutputFailed, "output_failed"},
      {ExitCode::kDataInvalid, "data_invalid"},
      {ExitCode::kInterrupted, "interrupted"},
      {ExitCode::kTerminated, "terminated"}};
  for (ExitCode code : kEveryCode) EXPECT_EQ(run_reason(r, {code, "x"}), expected.at(code));
}

TEST(RunReason, AFinerReasonOnlyForItsCode) {
  RunRecord r = gpu_run();
  r.reason = "unhealthy";
  EXPECT_EQ(run_reason(r, {ExitCode::kGpuUnusable, "GPU 0: ECC"}), "unhealthy");
  EXPECT_EQ(run_reason(r, {ExitCode::kTerminated, "stopped by SIGTERM"}), "terminated")
      << "a SIGTERM after the health check failed";
  EXPECT_EQ(run_reason(r, Outcome{}), "ok");
  r.reason = "accuracy_below_floor";
  EXPECT_EQ(run_reason(r, {ExitCode::kDiverged, "accuracy 0.5 below 0.9"}), "accuracy_below_floor");
  r.reason = "no such reason";
  EXPECT_EQ(run_reason(r, {ExitCode::kGpuUnusable, "x"}), "cuda_error");
}

TEST(RunReason, Exit3AfterTheDataLoadedIsThePeers) {
  RunRecord r = record_of({});
  EXPECT_EQ(run_reason(r, {ExitCode::kDataUnavailable, "all mirrors failed"}), "data_unavailable");
  r = gpu_run();
  EXPECT_EQ(run_reason(r, {ExitCode::kDataUnavailable, "NCCL: a peer process is stuck or gone"}),
            "peers_lost");
}

TEST(RunReason, Exit4SplitByWhatCudaSaw) {
  RunRecord r = record_of({"--backend", "cuda"});
  const Outcome gpu{ExitCode::kGpuUnusable, "no usable CUDA GPU: ..."};
  EXPECT_EQ(run_reason(r, gpu), "cuda_error") << "CUDA not asked";
  r.probe = GpuProbe{0, 0, 13000, "cudaErrorNoDevice: no CUDA-capable device is detected"};
  EXPECT_EQ(run_reason(r, gpu), "no_device") << "no driver at all";
  r.probe = GpuProbe{0, 0, 13000, "cudaErrorInsufficientDriver: CUDA driver version is ..."};
  EXPECT_EQ(run_reason(r, gpu), "no_device") << "what CUDA says without a driver";
  r.probe = GpuProbe{0, 13000, 13000, "cudaErrorNoDevice: no CUDA-capable device is detected"};
  EXPECT_EQ(run_reason(r, gpu), "no_device");
  r.probe = GpuProbe{0, 12040, 13000, "cudaErrorInsufficientDriver: CUDA driver version is ..."};
  EXPECT_EQ(run_reason(r, gpu), "driver_too_old");
  r.probe = GpuProbe{1, 13000, 13000, ""};
  EXPECT_EQ(run_reason(r, {ExitCode::kGpuUnusable,
                           "GPU 0 (...) is not usable: cudaErrorECCUncorrectable"}),
            "cuda_error");
  // The self-check's Error carries its reason (gpu/gpu_check.cpp); main keeps it in the record.
  r.reason = "wrong_answer";
  EXPECT_EQ(run_reason(r, {ExitCode::kGpuUnusable,
                           "GPU 1 (NVIDIA H200, ...) computes a wrong answer in its check: element "
                           "3 is 0.5, expected 1.5"}),
            "wrong_answer");
  r.reason.clear();
  for (const char* gpus : {"3", "0,2"}) {
    RunRecord short_of_gpus = record_of({"--backend", "cuda", "--gpus", gpus});
    short_of_gpus.probe = GpuProbe{2, 13000, 13000, ""};
    EXPECT_EQ(run_reason(short_of_gpus, gpu), "no_device") << gpus;
    short_of_gpus.probe = GpuProbe{3, 13000, 13000, ""};
    EXPECT_EQ(run_reason(short_of_gpus, gpu), "cuda_error") << gpus << ": every GPU is there";
  }
}

TEST(RunReason, EveryReasonBelongsToADocumentedCode) {
  std::set<std::string> tokens;
  for (const Reason& reason : reasons()) {
    EXPECT_TRUE(tokens.insert(reason.token).second) << reason.token << " twice";
    EXPECT_TRUE(std::regex_match(reason.token, std::regex("[a-z][a-z0-9_]*"))) << reason.token;
    EXPECT_NE(std::find(std::begin(kEveryCode), std::end(kEveryCode), reason.code),
              std::end(kEveryCode));
    EXPECT_STRNE(reason.meaning, "");
  }
  for (ExitCode code : kEveryCode) {  // each code's default comes first among its reasons
    const auto first = std::find_if(reasons().begin(), reasons().end(),
                                    [code](const Reason& x) { return x.code == code; });
    ASSERT_NE(first, reasons().end()) << static_cast<int>(code);
    EXPECT_EQ(run_reason(record_of({}), {code, "x"}), first->token);
  }
}

TEST(NodeName, TheDownwardApisNodeElseTheHost) {
  EXPECT_EQ(node_name("gke-pool-1-abcd", "pod-xyz"), "gke-pool-1-abcd");
  EXPECT_EQ(node_name(nullptr, "pod-xyz"), "pod-xyz");
  EXPECT_EQ(node_name("", "pod-xyz"), "pod-xyz");
  EXPECT_EQ(node_name("two words", "pod-xyz"), "pod-xyz") << "one word in the termination line";
  EXPECT_EQ(node_name("line\nbreak", "pod-xyz"), "pod-xyz");
  EXPECT_EQ(node_name("caf\xc3\xa9", "pod-xyz"), "pod-xyz") << "ASCII only";
  EXPECT_EQ(node_name(std::string(253, 'n').c_str(), "pod-xyz"), std::string(253, 'n'));
  EXPECT_EQ(node_name(std::string(254, 'n').c_str(), "pod-xyz"), "pod-xyz");
  EXPECT_EQ(node_name(nullptr, ""), "unknown");
  EXPECT_EQ(node_name("bad\tname", "bad host"), "unknown");
}

TEST(NodeName, ReadFromNodeNameAtStart) {
  ASSERT_EQ(::setenv("NODE_NAME", "node-from-env", 1), 0);
  const RunRecord r = record_of({});
  EXPECT_EQ(r.node, "node-from-env");
  EXPECT_EQ(node_name(), "node-from-env");
  ASSERT_EQ(::unsetenv("NODE_NAME"), 0);
  EXPECT_NE(node_name(), "node-from-env");
  EXPECT_FALSE(node_name().empty());
}

TEST(Provenance, TimestampHostAndNode) {
  ASSERT_EQ(::setenv("NODE_NAME", "node-b", 1), 0);
  const json p = provenance_json(std::chrono::system_clock::time_point(std::chrono::seconds(0)));
  ::unsetenv("NODE_NAME");
  EXPECT_EQ(p["timestamp"], "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(p["node"], "node-b");
  EXPECT_TRUE(p["host"].is_string());
}

// The checks a run makes itself, beside the per-GPU ones other stages add.
TEST(Checks, RunLevelChecks) {
  RunRecord r = gpu_run();
  std::vector<RunCheck> checks = run_checks(r, Outcome{});
  ASSERT_EQ(checks.size(), 2u);
  EXPECT_EQ(checks[0].check.name, "accuracy");
  EXPECT_FALSE(checks[0].gpu);
  EXPECT_EQ(std::get<double>(checks[0].check.value), 0.9555);
  EXPECT_FALSE(checks[0].check.threshold) << "no floor";
  EXPECT_EQ(checks[0].check.status, health::Status::kPass);
  EXPECT_EQ(checks[1].check.name, "finite_loss");
  EXPECT_EQ(std::get<double>(checks[1].check.value), 0.15);
  EXPECT_EQ(checks[1].check.status, health::Status::kPass);

  r.accuracy_floor = 0.97;
  checks = run_checks(r, Outcome{});
  EXPECT_EQ(checks[0].check.threshold, 0.97);
  EXPECT_EQ(checks[0].check.status, health::Status::kFail);
  EXPECT_EQ(checks[0].check.detail, "final test accuracy 0.9555 is below the floor 0.97");
  r.accuracy_floor = 0.95;
  EXPECT_EQ(run_checks(r, Outcome{})[0].check.status, health::Status::kPass);

  r.self_checked_gpus = 2;
  checks = run_checks(r, Outcome{});
  ASSERT_EQ(checks.size(), 3u);
  EXPECT_EQ(checks[0].check.name, "gpu_self_check");
  EXPECT_EQ(std::get<double>(checks[0].check.value), 2.0);
  EXPECT_EQ(checks[0].check.status, health::Status::kPass);

  RunRecord diverged = gpu_run();
  diverged.training.reset();
  checks = run_checks(diverged, {ExitCode::kDiverged, "training diverged: loss is NaN at step 3"});
  ASSERT_EQ(checks.size(), 1u);
  EXPECT_EQ(checks[0].check.name, "finite_loss");
  EXPECT_EQ(checks[0].check.status, health::Status::kFail);
  EXPECT_EQ(checks[0].check.detail, "training diverged: loss is NaN at step 3");

  RunRecord wrong = gpu_run();
  wrong.training.reset();
  wrong.reason = "wrong_answer";
  checks = run_checks(wrong, {ExitCode::kGpuUnusable,
                              "GPU 1 (...) computes a wrong answer in its "
                              "check: element 0 is 1, expected 2"});
  ASSERT_EQ(checks.size(), 1u);
  EXPECT_EQ(checks[0].check.name, "gpu_self_check");
  EXPECT_EQ(checks[0].check.status, health::Status::kFail);

  RunRecord none = record_of({});
  EXPECT_TRUE(run_checks(none, {ExitCode::kTerminated, "stopped"}).empty());
}

RunCheck gpu_check(int gpu, const char* name, double value, health::Status status) {
  return {gpu, {name, value, 0.0, "errors", status, std::string(name) + " detail"}};
}

TEST(Checks, PerGpuChecksComeFirstInTheVerdict) {
  RunRecord r = gpu_run();
  r.gpu_checks = {gpu_check(0, "ecc_uncorrected_volatile", 2, health::Status::kFail),
                  gpu_check(0, "temperature", std::nan(""), health::Status::kPass)};
  const json v = verdict_json(r, {ExitCode::kGpuUnusable, "GPU 0 unhealthy"}, kNow);
  ASSERT_EQ(v["checks"].size(), 4u);
  EXPECT_EQ(v["checks"][0], json({{"gpu", 0},
                                  {"name", "ecc_uncorrected_volatile"},
                                  {"value", 2.0},
                                  {"threshold", 0.0},
                                  {"unit", "errors"},
                                  {"status", "fail"},
                                  {"detail", "ecc_uncorrected_volatile detail"}}));
  EXPECT_TRUE(v["checks"][1]["value"].is_null()) << "JSON has no NaN";
  EXPECT_EQ(v["checks"][2]["name"], "accuracy");
  EXPECT_TRUE(v["checks"][2]["gpu"].is_null());
  EXPECT_TRUE(v["checks"][2]["threshold"].is_null());
  EXPECT_EQ(v["checks"][3]["name"], "finite_loss");
}

// docs/result.schema.json enumerates what the code writes: the reasons in order, the exit tokens,
// the check statuses, the schema version.
TEST(Schema, EnumerationsMatchTheCode) {
  std::ifstream in(MNIST_RESULT_SCHEMA);
  ASSERT_TRUE(in) << MNIST_RESULT_SCHEMA;
  const json schema = json::parse(in);
  const json& p = schema["properties"];
  std::vector<std::string> tokens;
  for (const Reason& reason : reasons()) tokens.push_back(reason.token);
  EXPECT_EQ(p["reason"]["enum"], json(tokens));
  std::vector<std::string> exits;
  std::vector<int> codes;
  for (ExitCode code : kEveryCode) {
    exits.push_back(exit_code_token(static_cast<int>(code)));
    codes.push_back(static_cast<int>(code));
  }
  EXPECT_EQ(p["exit_name"]["enum"], json(exits));
  EXPECT_EQ(p["exit_code"]["enum"], json(codes));
  EXPECT_EQ(p["schema_version"]["const"], kResultSchemaVersion);
  std::vector<std::string> statuses;
  for (health::Status s : {health::Status::kPass, health::Status::kWarn, health::Status::kFail,
                           health::Status::kUnavailable})
    statuses.push_back(health::status_name(s));
  EXPECT_EQ(schema["$defs"]["check"]["properties"]["status"]["enum"], json(statuses));
}

TEST(TerminationLine, PassedAndFailed) {
  RunRecord r = gpu_run();
  r.node = "gpu-node-7";
  EXPECT_EQ(termination_line(r, Outcome{}),
            std::string("mnist-train ") + program_version() +
                " passed: test accuracy 0.9555 (best 0.9561) after 450 steps, 1.23M images/s, "
                "NVIDIA H200 GPU-8f6e1a2b-0c3d-4e5f-9a8b-7c6d5e4f3a2b | reason=ok node=gpu-node-7");
  EXPECT_EQ(termination_line(r, {ExitCode::kGpuUnusable, "CUDA error: oops"}),
            std::string("mnist-train ") + program_version() +
                " failed (exit 4, GPU unusable): CUDA error: oops | reason=cuda_error "
                "node=gpu-node-7");
  RunRecord cpu = record_of({"--backend", "cpu"});
  cpu.backend = BackendKind::kCpu;
  cpu.training = sample_result();
  EXPECT_NE(termination_line(cpu, Outcome{}).find(", CPU backend"), std::string::npos);
}

TEST(TerminationLine, BenchmarkInAFewWords) {
  RunRecord r = gpu_run({"--benchmark"});
  r.node = "n1";
  r.training.reset();
  r.benchmark = json::object();
  r.benchmark["seed_job"] = json::array(
      {json{{"backend", "cuda"}, {"ms", 37.6}, {"summaries_ratio", 1.1}}, json("odd row")});
  r.benchmark["steps"] =
      json::array({json{{"backend", "cuda"}, {"batch", 100}, {"images_per_s", 3.0e6}},
                   json{{"backend", "cuda"}, {"batch", 8192}, {"images_per_s", 16.53e6}}});
  EXPECT_EQ(termination_line(r, Outcome{}),
            std::string("mnist-train ") + program_version() +
                " passed: benchmark on NVIDIA H200 GPU-8f6e1a2b-0c3d-4e5f-9a8b-7c6d5e4f3a2b: seed "
                "job cuda 37.6 ms (1.10x with summaries); fastest step cuda 16.5M images/s at "
                "batch 8192 | reason=ok node=n1");
}

// The first failing check (else the first warning) follows the reason and the node.
TEST(TerminationLine, NamesTheFirstFailingCheck) {
  RunRecord r = gpu_run();
  r.node = "n1";
  r.reason = "unhealthy";
  r.gpu_checks = {gpu_check(0, "temperature", 84, health::Status::kWarn),
                  gpu_check(1, "ecc_uncorrected_volatile", 2, health::Status::kFail),
                  gpu_check(1, "xid_events", 1, health::Status::kFail)};
  const std::string failed = termination_line(r, {ExitCode::kGpuUnusable, "GPU 1 is unhealthy"});
  EXPECT_EQ(failed, std::string("mnist-train ") + program_version() +
                        " failed (exit 4, GPU unusable): GPU 1 is unhealthy | reason=unhealthy "
                        "node=n1 check=GPU 1 ecc_uncorrected_volatile 2 errors (threshold 0): "
                        "ecc_uncorrected_volatile detail");
  r.gpu_checks.resize(1);
  EXPECT_NE(termination_line(r, Outcome{})
                .find(" | reason=ok node=n1 warning=GPU 0 temperature 84 errors (threshold 0): "
                      "temperature detail"),
            std::string::npos)
      << termination_line(r, Outcome{});
  r.accuracy_floor = 0.99;  // a run-level check that fails: no GPU named
  r.reason = "accuracy_below_floor";
  EXPECT_NE(termination_line(r, {ExitCode::kDiverged, "accuracy below its floor"})
                .find(" | reason=accuracy_below_floor node=n1 check=accuracy 0.9555 (threshold "
                      "0.99): final test accuracy 0.9555 is below the floor 0.99"),
            std::string::npos)
      << termination_line(r, {ExitCode::kDiverged, "accuracy below its floor"});
}

TEST(TerminationLine, OneLineWithinKubernetesLimit) {
  const std::string message = "first line\nsecond\tline\r" + std::string(10000, 'x');
  RunRecord r = gpu_run();
  r.node = std::string(253, 'n');
  r.gpu_checks = {{0,
                   {"xid_events", 79.0, std::nullopt, "", health::Status::kFail,
                    "line\nbreak " + std::string(5000, 'd')}}};
  const std::string line = termination_line(r, {ExitCode::kDataInvalid, message});
  EXPECT_EQ(line.size(), kTerminationMessageLimit - 1) << "room for the newline";
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_EQ(line.find('\r'), std::string::npos);
  EXPECT_EQ(line.find('\t'), std::string::npos);
  EXPECT_NE(line.find("first line second line"), std::string::npos);
  // The message is cut, never what follows it: the reason, the node and the check's start.
  const std::size_t tail = line.find("... | reason=data_invalid node=" + r.node +
                                     " check=GPU 0 xid_events 79: line break ddd");
  EXPECT_NE(tail, std::string::npos) << line;
  EXPECT_GT(tail, 3000u) << "the message keeps most of the line";
  EXPECT_EQ(line.substr(line.size() - 3), "...");
}

TEST(TerminationLine, CutOnACharacterBoundary) {
  std::string accents;
  for (int i = 0; i < 3000; ++i) accents += "\xc3\xa9";  // é, two bytes
  for (std::size_t limit = 10; limit < 20; ++limit) {
    const std::string line = one_line("ab" + accents, limit);
    EXPECT_LE(line.size(), limit);
    ASSERT_GE(line.size(), 4u);
    const std::string body = line.substr(0, line.size() - 3);
    // Every é whole: after "ab", an even number of bytes, each pair c3 a9.
    ASSERT_EQ((body.size() - 2) % 2, 0u) << limit;
    for (std::size_t i = 2; i < body.size(); i += 2)
      EXPECT_EQ(body.substr(i, 2), "\xc3\xa9") << limit;
  }
  EXPECT_EQ(one_line("short", 100), "short");
}

TEST(SummaryLine, Format) {
  DataOrigin origin;
  origin.fetch_seconds = 1.23;
  origin.downloaded_bytes = 9912422;
  TrainResult t = sample_result();
  t.images_per_second = 812345.4;
  EXPECT_EQ(summary_line(t, origin),
            "Summary: 450 training steps, 812345 images/s, 0.058 s in the loop, 1.2 s "
            "downloading (9.9 MB)");
}

class TerminationLog : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("mnist_report_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::permissions(dir_, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(dir_, ec);
  }
  std::string path(const char* name) const { return (dir_ / name).string(); }
  static std::string content(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  static void put(const std::string& p, const std::string& text) {
    std::ofstream(p, std::ios::binary) << text;
  }
  fs::path dir_;
};

TEST_F(TerminationLog, ReplacesAnExistingFile) {
  put(path("log"), std::string(5000, 'o'));  // longer than the line: must not show through
  const auto r = write_termination_log(path("log"), "mnist-train 1.0.0 passed: fine");
  EXPECT_EQ(r.status, TerminationLogStatus::kWritten) << r.detail;
  EXPECT_EQ(content(path("log")), "mnist-train 1.0.0 passed: fine\n");
}

TEST_F(TerminationLog, HeldToTheLimitAndOneLine) {
  put(path("log"), "");
  const auto r = write_termination_log(path("log"), "a\nb" + std::string(20000, 'z'));
  EXPECT_EQ(r.status, TerminationLogStatus::kWritten) << r.detail;
  const std::string text = content(path("log"));
  EXPECT_EQ(text.size(), kTerminationMessageLimit);
  EXPECT_EQ(text.rfind("a b", 0), 0u);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1);
  EXPECT_EQ(text.back(), '\n');
}

TEST_F(TerminationLog, MissingIsNeverCreated) {
  EXPECT_EQ(write_termination_log(path("absent"), "x").status, TerminationLogStatus::kAbsent);
  EXPECT_FALSE(fs::exists(path("absent")));
  EXPECT_EQ(write_termination_log(path("no/such/dir/log"), "x").status,
            TerminationLogStatus::kAbsent);
  EXPECT_FALSE(fs::exists(path("no")));
  EXPECT_EQ(write_termination_log("", "x").status, TerminationLogStatus::kDisabled);
}

TEST_F(TerminationLog, ALinkIsNotWrittenThrough) {
  put(path("target"), "precious");
  fs::create_symlink(path("target"), path("log"));
  const auto r = write_termination_log(path("log"), "x");
  EXPECT_EQ(r.status, TerminationLogStatus::kRefused);
  EXPECT_EQ(r.detail, "a symbolic link");
  EXPECT_EQ(content(path("target")), "precious");
  // A dangling link is not followed into creating its target either.
  fs::create_symlink(path("nowhere"), path("dangling"));
  EXPECT_EQ(write_termination_log(path("dangling"), "x").status, TerminationLogStatus::kRefused);
  EXPECT_FALSE(fs::exists(path("nowhere")));
}

TEST_F(TerminationLog, AFifoIsNeitherWaitedOnNorWritten) {
  ASSERT_EQ(::mkfifo(path("fifo").c_str(), 0666), 0);
  // No reader: opening it for writing would block without O_NONBLOCK.
  auto r = write_termination_log(path("fifo"), "x");
  EXPECT_EQ(r.status, TerminationLogStatus::kRefused);
  EXPECT_EQ(r.detail, "a FIFO");
  // With a reader: still not written.
  const int reader = ::open(path("fifo").c_str(), O_RDONLY | O_NONBLOCK);
  ASSERT_GE(reader, 0);
  r = write_termination_log(path("fifo"), "x");
  EXPECT_EQ(r.status, TerminationLogStatus::kRefused);
  char byte;
  EXPECT_LE(::read(reader, &byte, 1), 0) << "nothing was written into the FIFO";
  ::close(reader);
}

TEST_F(TerminationLog, FoldersAndDevicesAreRefused) {
  fs::create_directory(path("dir"));
  auto r = write_termination_log(path("dir"), "x");
  EXPECT_EQ(r.status, TerminationLogStatus::kRefused);
  EXPECT_EQ(r.detail, "a folder");
  r = write_termination_log("/dev/null", "x");
  EXPECT_EQ(r.status, TerminationLogStatus::kRefused);
  EXPECT_EQ(r.detail, "a device");
}

// A kernel interface that looks like a regular file is a command, not a message: /proc/self/comm
// would rename this process.
TEST_F(TerminationLog, AKernelFileIsRefused) {
  const std::string comm = content("/proc/self/comm");
  ASSERT_FALSE(comm.empty());
  const auto r = write_termination_log("/proc/self/comm", "renamed");
  EXPECT_EQ(r.status, TerminationLogStatus::kRefused);
  EXPECT_EQ(r.detail, "a file of /proc (a kernel interface)");
  EXPECT_EQ(content("/proc/self/comm"), comm);
}

// What main() refuses at start (exit 2): everything write_termination_log() would refuse.
TEST_F(TerminationLog, RefusalIsKnownWithoutWriting) {
  put(path("log"), "old");
  EXPECT_EQ(termination_log_refusal(path("log")), "");
  EXPECT_EQ(termination_log_refusal(path("absent")), "");
  EXPECT_EQ(termination_log_refusal(path("no/such/dir/log")), "");
  EXPECT_EQ(termination_log_refusal(""), "");
  EXPECT_EQ(content(path("log")), "old");
  fs::create_symlink(path("log"), path("link"));
  EXPECT_EQ(termination_log_refusal(path("link")), "a symbolic link");
  ASSERT_EQ(::mkfifo(path("fifo").c_str(), 0666), 0);
  EXPECT_EQ(termination_log_refusal(path("fifo")), "a FIFO");
  fs::create_directory(path("dir"));
  EXPECT_EQ(termination_log_refusal(path("dir")), "a folder");
  EXPECT_EQ(termination_log_refusal("/dev/null"), "a device");
  EXPECT_EQ(termination_log_refusal("/proc/self/comm"), "a file of /proc (a kernel interface)");
  if (fs::is_regular_file("/sys/kernel/mm/transparent_hugepage/enabled")) {
    EXPECT_EQ(termination_log_refusal("/sys/kernel/mm/transparent_hugepage/enabled"),
              "a file of /sys (a kernel interface)");
  }
}

TEST_F(TerminationLog, ReadOnlyFileIsLeftAlone) {
  put(path("log"), "old");
  fs::permissions(path("log"),
                  fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
  // Even as root (who may open it): a file nobody may write is not meant to be written.
  EXPECT_EQ(write_termination_log(path("log"), "x").status, TerminationLogStatus::kNotWritable);
  EXPECT_EQ(content(path("log")), "old");
}

class FinishRun : public TerminationLog {
 protected:
  static json load(const std::string& p) { return json::parse(content(p)); }
};

TEST_F(FinishRun, WritesResultJsonResultFileAndTerminationLog) {
  put(path("termination"), "");
  const std::string logs = path("logs"), result = path("out/verdict.json");
  RunRecord r = gpu_run({"--log_dir", logs.c_str(), "--result_file", result.c_str(),
                         "--termination_log", path("termination").c_str()});
  std::ostringstream err;
  EXPECT_EQ(finish_run(r, Outcome{}, err), 0) << err.str();
  EXPECT_EQ(err.str(), "");
  const json a = load(logs + "/result.json"), b = load(result);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a["verdict"], "passed");
  EXPECT_EQ(content(path("termination")), termination_line(r, Outcome{}) + "\n");
}

TEST_F(FinishRun, FailureKeepsItsCode) {
  const std::string logs = path("logs");
  RunRecord r = record_of({"--log_dir", logs.c_str(), "--termination_log", ""});
  std::ostringstream err;
  EXPECT_EQ(finish_run(r, {ExitCode::kDiverged, "loss is NaN at step 31"}, err), 5);
  const json v = load(logs + "/result.json");
  EXPECT_EQ(v["verdict"], "failed");
  EXPECT_EQ(v["exit_code"], 5);
  EXPECT_EQ(v["exit_name"], "diverged");
  EXPECT_EQ(v["error"], "loss is NaN at step 31");
}

TEST_F(FinishRun, UnwritableVerdictFailsAPassingRunWithSix) {
  put(path("a_file"), "");
  put(path("termination"), "");
  const std::string result = path("a_file/verdict.json"), logs = path("logs");
  RunRecord r = gpu_run({"--log_dir", logs.c_str(), "--result_file", result.c_str(),
                         "--termination_log", path("termination").c_str()});
  std::ostringstream err;
  EXPECT_EQ(finish_run(r, Outcome{}, err), 6);
  EXPECT_NE(err.str().find("mnist-train: error: cannot write the verdict: "), std::string::npos)
      << err.str();
  // The verdict that could be written says what the exit code says.
  const json v = load(logs + "/result.json");
  EXPECT_EQ(v["verdict"], "failed");
  EXPECT_EQ(v["exit_code"], 6);
  EXPECT_NE(v["error"].get<std::string>().find("cannot write the verdict"), std::string::npos);
  EXPECT_EQ(content(path("termination"))
                .rfind(std::string("mnist-train ") + program_version() +
                           " failed (exit 6, output failed): cannot "
                           "write the verdict",
                       0),
            0u)
      << content(path("termination"));
}

TEST_F(FinishRun, UnwritableVerdictOnAFailingRunKeepsTheCode) {
  put(path("a_file"), "");
  const std::string result = path("a_file/verdict.json");
  RunRecord r =
      record_of({"--log_dir", "", "--result_file", result.c_str(), "--termination_log", ""});
  std::ostringstream err;
  EXPECT_EQ(finish_run(r, {ExitCode::kDataUnavailable, "no mirror"}, err), 3);
  EXPECT_NE(err.str().find("cannot write the verdict"), std::string::npos);
}

TEST_F(FinishRun, AFolderUnderResultJsonIsReported) {
  const std::string logs = path("logs"), result = path("verdict.json");
  fs::create_directories(logs + "/result.json");
  RunRecord r = gpu_run(
      {"--log_dir", logs.c_str(), "--result_file", result.c_str(), "--termination_log", ""});
  std::ostringstream err;
  EXPECT_EQ(finish_run(r, Outcome{}, err), 6);
  EXPECT_EQ(load(result)["exit_code"], 6) << "rewritten once the run failed";
}

// What main() checks before the run: the verdict files finish_run() writes, and what under their
// names would keep the verdict out at the end.
TEST_F(FinishRun, VerdictFilesAreKnownAndCheckedBeforeTheRun) {
  const std::string logs = path("logs"), result = path("verdict.json");
  const Options train = parse({"--log_dir", logs.c_str(), "--result_file", result.c_str()});
  const std::vector<VerdictFile> files = verdict_files(train);
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files[0].path, logs + "/result.json");
  EXPECT_EQ(files[0].flag, "--log_dir");
  EXPECT_EQ(files[1].path, result);
  EXPECT_EQ(files[1].flag, "--result_file");
  EXPECT_EQ(verdict_files(parse({"--benchmark", "--log_dir", logs.c_str()})).size(), 0u);
  EXPECT_EQ(verdict_files(parse({"--download_only", "--result_file", result.c_str()})).size(), 1u);

  for (const VerdictFile& file : files) EXPECT_NO_THROW(check_verdict_file(file));  // nothing yet
  fs::create_directories(logs + "/result.json");
  fs::create_directory(result);
  for (const VerdictFile& file : files) {
    try {
      check_verdict_file(file);
      ADD_FAILURE() << file.path << ": a folder in the verdict's place was not found";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ExitCode::kOutputFailed);
      EXPECT_NE(std::string(e.what()).find(file.path + ": a folder is in the verdict's place (" +
                                           file.flag + ")"),
                std::string::npos)
          << e.what();
    }
  }
  // A link: replaced under log_dir (like every output there), never written over as --result_file.
  fs::remove(logs + "/result.json");
  fs::remove(result);
  put(path("target"), "precious");
  fs::create_symlink(path("target"), logs + "/result.json");
  fs::create_symlink(path("target"), result);
  EXPECT_NO_THROW(check_verdict_file(files[0]));
  EXPECT_THROW(check_verdict_file(files[1]), Error);
}

// --metrics_file: a *.prom name (the textfile collector reads no other), checked before the run
// like --result_file, written by finish_run() with every outcome.
TEST_F(FinishRun, MetricsFileIsAVerdictFile) {
  const std::string metrics = path("node/mnist.prom");
  const std::vector<VerdictFile> files =
      verdict_files(parse({"--log_dir", "", "--metrics_file", metrics.c_str()}));
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0].path, metrics);
  EXPECT_EQ(files[0].flag, "--metrics_file");
  EXPECT_EQ(files[0].format, VerdictFile::Format::kPrometheus);
  EXPECT_EQ(verdict_files(parse({"--benchmark", "--metrics_file", metrics.c_str()})).size(), 1u);
  EXPECT_EQ(verdict_files(parse({"--download_only", "--metrics_file", metrics.c_str()})).size(),
            1u);
  // Like --result_file: a link there is never written over.
  fs::create_directories(path("node"));
  put(path("target"), "precious");
  fs::create_symlink(path("target"), metrics);
  EXPECT_THROW(check_verdict_file(files[0]), Error);
}

TEST(MetricsFlag, NeedsAPromName) {
  EXPECT_EQ(parse({"--metrics_file", "/var/lib/node_exporter/mnist.prom"}).metrics_file,
            "/var/lib/node_exporter/mnist.prom");
  EXPECT_EQ(parse({}).metrics_file, "");
  for (const char* bad : {"/var/lib/node_exporter/mnist.txt", "mnist.prom.tmp", "dir/.prom",
                          "/var/lib/node_exporter/", "prom"}) {
    std::vector<const char*> argv = {"mnist-train", "--metrics_file", bad};
    try {
      parse_command_line(static_cast<int>(argv.size()), argv.data());
      ADD_FAILURE() << bad << " accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ExitCode::kBadArguments);
      EXPECT_NE(std::string(e.what()).find("--metrics_file"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("not a NAME.prom file"), std::string::npos) << e.what();
    }
  }
}

TEST_F(FinishRun, WritesTheMetricsFileWithEveryOutcome) {
  const std::string metrics = path("textfile/mnist.prom");
  RunRecord r =
      gpu_run({"--log_dir", "", "--metrics_file", metrics.c_str(), "--termination_log", ""});
  r.node = "gpu-node-7";
  std::ostringstream err;
  EXPECT_EQ(finish_run(r, Outcome{}, err), 0) << err.str();
  std::string text = content(metrics);
  EXPECT_NE(text.find("mnist_train_passed{node=\"gpu-node-7\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("mnist_train_test_accuracy{node=\"gpu-node-7\"} 0.9555\n"), std::string::npos)
      << text;
  EXPECT_EQ(std::count_if(fs::directory_iterator(path("textfile")), fs::directory_iterator(),
                          [](const fs::directory_entry&) { return true; }),
            1)
      << "no temporary left beside it";

  EXPECT_EQ(finish_run(r, {ExitCode::kTerminated, "stopped by SIGTERM"}, err), 143);
  text = content(metrics);
  EXPECT_NE(text.find("mnist_train_passed{node=\"gpu-node-7\"} 0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("mnist_train_exit_code{node=\"gpu-node-7\"} 143\n"), std::string::npos);
  EXPECT_NE(text.find("reason=\"terminated\""), std::string::npos);

  // A passing run whose other verdict file cannot be written is exit 6 in the metrics too.
  put(path("a_file"), "");
  const std::string result = path("a_file/verdict.json");
  RunRecord six = gpu_run({"--log_dir", "", "--metrics_file", metrics.c_str(), "--result_file",
                           result.c_str(), "--termination_log", ""});
  six.node = "gpu-node-7";
  EXPECT_EQ(finish_run(six, Outcome{}, err), 6);
  EXPECT_NE(content(metrics).find("mnist_train_exit_code{node=\"gpu-node-7\"} 6\n"),
            std::string::npos)
      << content(metrics);
}

// A legal name of the folder's longest length still gets its temporary (write_file_atomically).
TEST_F(FinishRun, AResultFileOfTheLongestLegalNameIsWritten) {
  const long name_max = ::pathconf(dir_.c_str(), _PC_NAME_MAX);
  ASSERT_GT(name_max, 5);
  const std::string result = (dir_ / (std::string(name_max - 5, 'r') + ".json")).string();
  RunRecord r =
      gpu_run({"--log_dir", "", "--result_file", result.c_str(), "--termination_log", ""});
  std::ostringstream err;
  EXPECT_EQ(finish_run(r, Outcome{}, err), 0) << err.str();
  EXPECT_EQ(load(result)["verdict"], "passed");
}

TEST_F(FinishRun, ResultFileIsNeverWrittenOverALink) {
  put(path("target"), "precious");
  fs::create_symlink(path("target"), path("verdict.json"));
  RunRecord r = gpu_run(
      {"--log_dir", "", "--result_file", path("verdict.json").c_str(), "--termination_log", ""});
  std::ostringstream err;
  EXPECT_EQ(finish_run(r, Outcome{}, err), 6);
  EXPECT_EQ(content(path("target")), "precious");
  EXPECT_TRUE(fs::is_symlink(path("verdict.json")));
}

TEST_F(FinishRun, InvalidUtf8StaysValidJson) {
  const std::string result = path("verdict.json");
  RunRecord r =
      record_of({"--log_dir", "", "--result_file", result.c_str(), "--termination_log", ""});
  std::ostringstream err;
  EXPECT_EQ(finish_run(r, {ExitCode::kOutputFailed, "/tmp/\xff\xfe: cannot write"}, err), 6);
  EXPECT_EQ(err.str(), "");
  EXPECT_EQ(load(result)["exit_code"], 6);
}

// A command line that does not parse (a typo in a Job's args) still leaves its termination
// message, at --termination_log if it can be read from argv, but no verdict file.
TEST_F(FinishRun, AFlagErrorLeavesOnlyTheTerminationMessage) {
  put(path("termination"), "");
  const std::string logs = path("logs"), result = path("verdict.json");
  const std::string termination = path("termination"), eq = "--termination_log=" + termination;
  for (const std::vector<const char*>& argv :
       {std::vector<const char*>{"mnist-train", "--bad", "--log_dir", logs.c_str(), "--result_file",
                                 result.c_str(), "--termination_log", termination.c_str()},
        std::vector<const char*>{"mnist-train", eq.c_str(), "--max_steps", "-1"}}) {
    RunRecord unparsed(static_cast<int>(argv.size()), argv.data());
    std::ostringstream err;
    const Outcome bad{ExitCode::kBadArguments, "unknown flag --bad"};
    EXPECT_EQ(finish_run(unparsed, bad, err), 2);
    EXPECT_EQ(content(path("termination")), termination_line(unparsed, bad) + "\n");
    EXPECT_NE(content(path("termination")).find("failed (exit 2, bad arguments)"),
              std::string::npos);
    put(path("termination"), "");
  }
  EXPECT_FALSE(fs::exists(logs));
  EXPECT_FALSE(fs::exists(result));
}

TEST_F(FinishRun, NothingForADryRun) {
  put(path("termination"), "untouched");
  std::ostringstream err;
  const std::string logs = path("logs");
  RunRecord dry = record_of(
      {"--dry_run", "--log_dir", logs.c_str(), "--termination_log", path("termination").c_str()});
  EXPECT_EQ(finish_run(dry, Outcome{}, err), 0);
  EXPECT_FALSE(fs::exists(logs));
  EXPECT_EQ(content(path("termination")), "untouched");
}

TEST_F(FinishRun, BenchmarkAndDownloadOnlyWriteNoResultJson) {
  const std::string logs = path("logs"), result = path("verdict.json");
  RunRecord r = gpu_run({"--benchmark", "--log_dir", logs.c_str(), "--result_file", result.c_str(),
                         "--termination_log", ""});
  r.benchmark = {{"seed_job", json::array()}};
  std::ostringstream err;
  EXPECT_EQ(finish_run(r, Outcome{}, err), 0) << err.str();
  EXPECT_FALSE(fs::exists(logs + "/result.json")) << "--benchmark ignores --log_dir";
  const json v = load(result);
  EXPECT_EQ(v["mode"], "benchmark");
  EXPECT_EQ(v["benchmark"], r.benchmark);
}

}  // namespace
}  // namespace mnist
