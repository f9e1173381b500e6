#include <gtest/gtest.h>

#include "app/cli.h"
#include "app/cli_test_util.h"
#include "error.h"

namespace mnist {
namespace {

using cli_test::contains;
using cli_test::parse;
using cli_test::refusal;

ExitCode parse_error(std::vector<const char*> args) {
  try {
    parse(std::move(args));
  } catch (const Error& e) {
    return e.code();
  }
  return ExitCode::kOk;
}

TEST(Options, DefaultsAreTheTensorFlowSample) {
  const Options o = *parse({});
  EXPECT_EQ(o.max_steps, 1000);
  EXPECT_FLOAT_EQ(o.learning_rate, 0.001f);
  EXPECT_FLOAT_EQ(o.dropout_keep, 0.9f);
  EXPECT_EQ(o.data_dir, "/tmp/tensorflow/input_data");
  EXPECT_EQ(o.log_dir, "/tmp/tensorflow/logs");
  EXPECT_FALSE(o.fake_data);
  EXPECT_EQ(o.batch_size, 100);
  EXPECT_EQ(o.hidden_units, 500);
  EXPECT_EQ(o.backend, BackendKind::kAuto);
  EXPECT_EQ(o.model, ModelKind::kMlp);
}

TEST(Options, BothFlagSpellingsWork) {
  const Options a = *parse({"--max_steps", "500", "--learning_rate=0.01", "--fake_data"});
  EXPECT_EQ(a.max_steps, 500);
  EXPECT_FLOAT_EQ(a.learning_rate, 0.01f);
  EXPECT_TRUE(a.fake_data);
  const Options b = *parse({"--max_steps=7", "--backend=cpu", "--model", "softmax", "--mirror",
                            "http://a/", "--mirror=file:///b/"});
  EXPECT_EQ(b.max_steps, 7);
  EXPECT_EQ(b.backend, BackendKind::kCpu);
  EXPECT_EQ(b.model, ModelKind::kSoftmax);
  EXPECT_EQ(b.mirrors, (std::vector<std::string>{"http://a/", "file:///b/"}));
}

TEST(Options, BadInputIsExitCode2) {
  EXPECT_EQ(parse_error({"--no_such_flag"}), ExitCode::kBadArguments);
  EXPECT_EQ(parse_error({"--max_steps", "ten"}), ExitCode::kBadArguments);
  EXPECT_EQ(parse_error({"--max_steps", "-1"}), ExitCode::kBadArguments);
  EXPECT_EQ(parse_error({"--dropout", "0"}), ExitCode::kBadArguments);
  EXPECT_EQ(parse_error({"--dropout", "1.5"}), ExitCode::kBadArguments);
  EXPECT_EQ(parse_error({"--backend", "gpu"}), ExitCode::kBadArguments);
  EXPECT_EQ(parse_error({"--model", "cnn"}), ExitCode::kBadArguments);
  EXPECT_EQ(parse_error({"--batch_size", "0"}), ExitCode::kBadArguments);
  EXPECT_EQ(parse_error({"--dataset", "cifar"}), ExitCode::kBadArguments);
  EXPECT_EQ(parse_error({"stray"}), ExitCode::kBadArguments);
  EXPECT_EQ(parse_error({"--benchmark_backends", "cpu,gpu"}), ExitCode::kBadArguments);
  EXPECT_EQ(parse_error({"--cuda_graphs", "yes"}), ExitCode::kBadArguments);
}

TEST(Options, NumbersMustBeFiniteAndInRange) {
  for (const char* lr : {"nan", "inf", "-inf", "0", "-0.001", "1e-50", "1e31", "1e309", "0x1p-3",
                         " 0.1", "0.1 ", "+0.1", "0.1x", ""}) {
    EXPECT_EQ(parse_error({"--learning_rate", lr}), ExitCode::kBadArguments) << lr;
  }
  for (const char* keep : {"nan", "0", "1e-50", "1e-7", "1.0000001", "-0.5", "inf"})
    EXPECT_EQ(parse_error({"--dropout", keep}), ExitCode::kBadArguments) << keep;
  EXPECT_FLOAT_EQ(parse({"--dropout", "1e-6"})->dropout_keep, 1e-6f);  // the documented minimum
  EXPECT_FLOAT_EQ(parse({"--dropout", "1"})->dropout_keep, 1.0f);
  EXPECT_FLOAT_EQ(parse({"--learning_rate", "1e-10"})->learning_rate, 1e-10f);
  for (const char* timeout : {"nan", "inf", "0", "0.0001", "3601", "1e300"})
    EXPECT_EQ(parse_error({"--download_timeout", timeout}), ExitCode::kBadArguments) << timeout;
  EXPECT_DOUBLE_EQ(parse({"--download_timeout", "0.1"})->download_timeout_s, 0.1);
  EXPECT_DOUBLE_EQ(parse({"--download_timeout=3600"})->download_timeout_s, 3600);

  struct Bad {
    const char* flag;
    const char* value;
  };
  for (const Bad& bad : {Bad{"--max_steps", "-1"},
                         {"--max_steps", "1000000001"},
                         {"--max_steps", "1e3"},
                         {"--max_steps", "2147483648"},
                         {"--max_steps", "5.0"},
                         {"--max_steps", "0x10"},
                         {"--hidden_units", "0"},
                         {"--hidden_units", "65537"},
                         {"--batch_size", "0"},
                         {"--batch_size", "1048577"},
                         {"--eval_every", "0"},
                         {"--eval_every", "-10"},
                         {"--download_attempts", "0"},
                         {"--download_attempts", "101"},
                         {"--benchmark_steps", "0"},
                         {"--benchmark_steps", "16777217"},
                         {"--benchmark_batches", "0"},
                         {"--benchmark_batches", "100,x"},
                         {"--benchmark_batches", "100,,200"},
                         {"--benchmark_batches", ","}}) {
    EXPECT_EQ(parse_error({bad.flag, bad.value}), ExitCode::kBadArguments)
        << bad.flag << " " << bad.value;
  }
  const Options o = *parse({"--max_steps", "1000000000", "--hidden_units", "65536", "--batch_size",
                            "1", "--eval_every", "1", "--download_attempts", "100",
                            "--benchmark_batches", "7,8", "--benchmark_batches", "9"});
  EXPECT_EQ(o.max_steps, 1000000000);
  EXPECT_EQ(o.hidden_units, 65536);
  EXPECT_EQ(o.benchmark_batches, (std::vector<int>{7, 8, 9}));
  EXPECT_EQ(parse({"--max_steps", "010"})->max_steps, 10) << "decimal, not octal";
}

TEST(Options, SeedIsAnyUint64WithoutWrapping) {
  EXPECT_EQ(parse({"--seed", "0"})->seed, 0u);
  EXPECT_EQ(parse({"--seed", "18446744073709551615"})->seed, 18446744073709551615u);
  for (const char* seed :
       {"-1", "18446744073709551616", "1e3", "99999999999999999999999", "1.5", "", "0x10", "-0"}) {
    EXPECT_EQ(parse_error({"--seed", seed}), ExitCode::kBadArguments) << seed;
  }
}

TEST(Options, RangeErrorsShowReadableBounds) {
  const std::string lr = refusal({"--learning_rate", "1e309"});
  EXPECT_TRUE(contains(lr, "--learning_rate \"1e309\": out of range (1e-10 to 1e+30)")) << lr;
  EXPECT_LT(lr.size(), 120u) << lr;
  EXPECT_TRUE(contains(refusal({"--learning_rate", "nan"}), "not a finite number"));
  EXPECT_TRUE(contains(refusal({"--dropout", "0"}), "out of range (1e-06 to 1)"));
  EXPECT_TRUE(contains(refusal({"--max_steps", "-1"}), "out of range (0 to 1000000000)"));
  EXPECT_TRUE(contains(refusal({"--seed", "-1"}), "out of range (0 to 18446744073709551615)"));
  EXPECT_TRUE(contains(refusal({"--seed", "1e3"}), "not a whole number"));
  EXPECT_TRUE(contains(refusal({"--download_timeout", "0"}), "out of range (0.1 to 3600)"));
  // A huge value is cut short in the message.
  const std::string long_value(5000, '9');
  EXPECT_LT(refusal({"--max_steps", long_value.c_str()}).size(), 200u);
}

TEST(Options, AFlagWithoutItsValueNeverSwallowsTheNextFlag) {
  EXPECT_TRUE(
      contains(refusal({"--data_dir", "--dry_run", "--fake_data"}), "--data_dir needs a value"));
  EXPECT_EQ(parse_error({"--log_dir", "--fake_data"}), ExitCode::kBadArguments);
  EXPECT_EQ(parse_error({"--max_steps", "--fake_data"}), ExitCode::kBadArguments);
  EXPECT_EQ(parse_error({"--mirror", "--dry_run"}), ExitCode::kBadArguments);
  EXPECT_EQ(parse_error({"--checkpoint_dir=--x"}), ExitCode::kBadArguments);
  EXPECT_TRUE(contains(refusal({"--fake_data", "--max_steps"}), "--max_steps needs a value"));

  // An empty value given with '=' is a value: --log_dir= means "no summaries".
  const Options o = *parse({"--log_dir=", "--fake_data"});
  EXPECT_EQ(o.log_dir, "");
  EXPECT_TRUE(o.fake_data);
  EXPECT_EQ(parse({"--log_dir", "", "--dry_run"})->log_dir, "");
  EXPECT_TRUE(parse({"--log_dir", "", "--dry_run"})->dry_run);
  EXPECT_EQ(parse({"--checkpoint_dir="})->checkpoint_dir, "");

  // Values are taken as written, even when they look like something else.
  EXPECT_EQ(parse({"--data_dir", "./--x"})->data_dir, "./--x");
  EXPECT_EQ(parse({"--data_dir", "-h"})->data_dir, "-h");
  EXPECT_EQ(parse({"--log_dir=a=b"})->log_dir, "a=b");
  EXPECT_EQ(parse({"--log_dir", "[x]"})->log_dir, "[x]");

  EXPECT_EQ(parse_error({"--data_dir="}), ExitCode::kBadArguments) << "an empty cache folder";
  EXPECT_EQ(parse_error({"--fake_data="}), ExitCode::kBadArguments);
  EXPECT_FALSE(parse({"--fake_data=false"})->fake_data);
  EXPECT_EQ(parse_error({"--max_steps", "1", "--max_steps", "2"}), ExitCode::kBadArguments);
}

TEST(Options, MirrorsMustBeHttpHttpsOrFileUrls) {
  for (const char* mirror : {"", "ftp://example.com/", "example.com/mnist/", "gopher://x/",
                             "http://", "file://", "[http://a/]", "/srv/mnist"}) {
    EXPECT_EQ(parse_error({"--mirror", mirror}), ExitCode::kBadArguments) << mirror;
  }
  EXPECT_EQ(parse_error({"--mirror="}), ExitCode::kBadArguments);
  EXPECT_EQ(parse_error({"--mirror", "http://a/", "--mirror", ""}), ExitCode::kBadArguments);
  const Options o = *parse(
      {"--mirror", "https://a/b/", "--mirror", "HTTP://c/", "--mirror", "file:///srv/mnist/"});
  EXPECT_EQ(o.mirrors,
            (std::vector<std::string>{"https://a/b/", "HTTP://c/", "file:///srv/mnist/"}));
}

TEST(Options, AMistypedFlagNamesTheClosestOne) {
  EXPECT_TRUE(
      contains(refusal({"--max_step", "5"}), "unknown flag --max_step; did you mean --max_steps?"));
  EXPECT_TRUE(contains(refusal({"--learningrate=0.1"}), "did you mean --learning_rate?"));
  EXPECT_TRUE(contains(refusal({"-max_steps", "5"}), "did you mean --max_steps?"));
  EXPECT_TRUE(contains(refusal({"--Fake_Data"}), "did you mean --fake_data?"));
  EXPECT_TRUE(contains(refusal({"max_steps"}), "unexpected argument"));
  EXPECT_FALSE(contains(refusal({"--completely_unrelated"}), "did you mean"));
  EXPECT_EQ(parse_error({"--"}), ExitCode::kBadArguments);
  EXPECT_EQ(parse_error({"-"}), ExitCode::kBadArguments);
  EXPECT_EQ(parse_error({"-x"}), ExitCode::kBadArguments);
}

TEST(Options, CheckpointEveryIsStepsSecondsOrMinutes) {
  const RunConfig fallback = run_config(*parse({}));
  EXPECT_EQ(fallback.checkpoint_every_steps, 0);
  EXPECT_DOUBLE_EQ(fallback.checkpoint_every_seconds, 60.0) << "default 60s";

  const RunConfig steps = run_config(*parse({"--checkpoint_every", "500"}));
  EXPECT_EQ(steps.checkpoint_every_steps, 500);
  EXPECT_DOUBLE_EQ(steps.checkpoint_every_seconds, 0.0);
  const RunConfig seconds = run_config(*parse({"--checkpoint_every=90s"}));
  EXPECT_EQ(seconds.checkpoint_every_steps, 0);
  EXPECT_DOUBLE_EQ(seconds.checkpoint_every_seconds, 90.0);
  EXPECT_DOUBLE_EQ(run_config(*parse({"--checkpoint_every", "5m"})).checkpoint_every_seconds, 300);
  for (const char* off : {"0", "0s", "0m"}) {
    const RunConfig never = run_config(*parse({"--checkpoint_every", off}));
    EXPECT_EQ(never.checkpoint_every_steps, 0) << off;
    EXPECT_DOUBLE_EQ(never.checkpoint_every_seconds, 0.0) << off;
  }
  for (const char* bad : {"", "s", "m", "5h", "-1", "-5s", "1.5m", "nan", "1e3", "60 s", "10081m",
                          "604801s", "1000000001", "99999999999999999999s"}) {
    EXPECT_EQ(parse_error({"--checkpoint_every", bad}), ExitCode::kBadArguments) << bad;
  }
  Options by_hand;
  by_hand.checkpoint_every = "often";
  EXPECT_THROW(run_config(by_hand), Error);
}

TEST(Options, VersionPrintsTheProjectVersion) {
  testing::internal::CaptureStdout();
  EXPECT_FALSE(parse({"--version"}).has_value());
  const std::string out = testing::internal::GetCapturedStdout();
  EXPECT_EQ(out.rfind("mnist-train ", 0), 0u) << out;
  EXPECT_EQ(out.back(), '\n');
}

TEST(Options, NoCommandLineThrowsAnythingButError) {
  // Odd shapes CLI11 alone mishandled or threw its own exceptions for: each must be Error (exit 2)
  // or accepted, never another exception (main() would report those as a bug, exit 1).
  const std::vector<std::vector<const char*>> lines = {{"--help=maybe"},
                                                       {"--fake_data=maybe"},
                                                       {"--fake_data=--x"},
                                                       {"--=1"},
                                                       {"---max_steps", "1"},
                                                       {"--max_steps=", "1"},
                                                       {"--benchmark_backends", "auto"},
                                                       {"--benchmark_backends", ""},
                                                       {"--benchmark_batches="},
                                                       {"--cuda_graphs", "maybe"},
                                                       {"--dataset", ""},
                                                       {"--model="},
                                                       {"-h=1"},
                                                       {"--version=1"},
                                                       {"--mirror", "[]"},
                                                       {"--max_steps", "{}"},
                                                       {"--seed", "{}"},
                                                       {"--fake_data", "--fake_data"},
                                                       {"\xff\xfe"},
                                                       {"--\xff"}};
  for (const auto& line : lines) {
    testing::internal::CaptureStdout();
    try {
      parse(line);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ExitCode::kBadArguments) << line[0];
    } catch (const std::exception& e) {
      ADD_FAILURE() << line[0] << ": " << e.what();
    }
    testing::internal::GetCapturedStdout();
  }
}

TEST(Options, HelpReturnsNothingToRun) {
  testing::internal::CaptureStdout();
  EXPECT_FALSE(parse({"--help"}).has_value());
  const std::string help = testing::internal::GetCapturedStdout();
  for (const char* flag : {"--max_steps", "--learning_rate", "--dropout", "--data_dir", "--log_dir",
                           "--fake_data", "--backend", "--model", "--hidden_units", "--batch_size",
                           "--seed", "--mirror", "--dataset", "--checkpoint_dir", "--eval_every",
                           "--checkpoint_every", "--version", "0 to 1000000000", "1e-06 to 1"}) {
    EXPECT_NE(help.find(flag), std::string::npos) << flag;
  }
}

TEST(Options, PrecisionOfTheWideProducts) {
  EXPECT_EQ(parse({})->precision, Precision::kFp32);
  EXPECT_EQ(parse({"--precision", "tf32"})->precision, Precision::kTf32);
  EXPECT_EQ(parse({"--precision=bf16", "--backend", "cublas"})->precision, Precision::kBf16);
  EXPECT_EQ(run_config(*parse({"--precision", "bf16"})).train.precision, Precision::kBf16);
  EXPECT_TRUE(contains(refusal({"--precision", "fp16"}), "must be one of fp32, tf32, bf16"));
  EXPECT_TRUE(contains(refusal({"--precision", "tf32", "--backend", "cpu"}), "fp32 only"));
  EXPECT_NO_THROW(parse({"--precision", "fp32", "--backend", "cpu"}));
  const Options b = *parse({"--benchmark_precisions", "bf16,fp32"});
  EXPECT_EQ(b.benchmark_precisions, (std::vector<Precision>{Precision::kBf16, Precision::kFp32}));
  EXPECT_TRUE(contains(refusal({"--benchmark_precisions", "fp64"}), "must be one of"));
}

TEST(Options, StepKernel) {
  EXPECT_EQ(parse({})->step_kernel, StepKernel::kAuto);
  EXPECT_EQ(parse({"--step_kernel", "tiled"})->step_kernel, StepKernel::kTiled);
  EXPECT_EQ(run_config(*parse({"--step_kernel", "fused"})).train.step_kernel, StepKernel::kFused);
  EXPECT_NO_THROW(parse({"--step_kernel", "fused", "--batch_size", "128", "--backend", "cuda"}));
  EXPECT_TRUE(contains(refusal({"--step_kernel", "fast"}), "must be one of auto, fused, tiled"));
  EXPECT_TRUE(contains(refusal({"--step_kernel", "fused", "--batch_size", "129"}),
                       "batches of up to 128 rows"));
  EXPECT_TRUE(
      contains(refusal({"--step_kernel", "fused", "--backend", "cublas"}), "the cuda backend's"));
  EXPECT_TRUE(contains(refusal({"--step_kernel", "fused", "--backend", "cpu"}), "cuda backend"));
  EXPECT_TRUE(contains(refusal({"--step_kernel", "fused", "--model", "softmax"}), "mlp"));
  EXPECT_TRUE(contains(refusal({"--step_kernel", "fused", "--precision", "tf32"}), "fp32"));
  EXPECT_TRUE(contains(refusal({"--step_kernel", "tiled", "--benchmark"}), "side by side"));
  EXPECT_TRUE(contains(refusal({"--step_kernel", "fused", "--gpus", "2"}), "trains on one GPU"));
  EXPECT_TRUE(contains(refusal({"--step_kernel", "fused", "--gpus", "0,1"}), "trains on one GPU"));
  EXPECT_TRUE(
      contains(refusal({"--step_kernel", "fused", "--world_size", "2", "--rendezvous",
                        "localhost:29400", "--rendezvous_secret_file", cli_test::secret_file()}),
               "trains on one GPU"));
  EXPECT_NO_THROW(parse({"--step_kernel", "fused", "--gpus", "1"}));
  // Tiled runs anything the backend runs.
  EXPECT_NO_THROW(parse({"--step_kernel", "tiled", "--batch_size", "4096", "--precision", "bf16"}));
}

}  // namespace
}  // namespace mnist
