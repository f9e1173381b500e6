#include <gtest/gtest.h>

#include "app/cli.h"
#include "error.h"

namespace mnist {
namespace {

std::optional<Options> parse(std::vector<const char*> args) {
  args.insert(args.begin(), "mnist-train");
  return parse_command_line(static_cast<int>(args.size()), args.data());
}

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
}

TEST(Options, HelpReturnsNothingToRun) {
  testing::internal::CaptureStdout();
  EXPECT_FALSE(parse({"--help"}).has_value());
  const std::string help = testing::internal::GetCapturedStdout();
  for (const char* flag : {"--max_steps", "--learning_rate", "--dropout", "--data_dir", "--log_dir",
                           "--fake_data", "--backend", "--model", "--hidden_units", "--batch_size",
                           "--seed", "--mirror", "--dataset", "--checkpoint_dir", "--eval_every"}) {
    EXPECT_NE(help.find(flag), std::string::npos) << flag;
  }
}

}  // namespace
}  // namespace mnist
