// Fuzzes the command line (src/app/cli.h): the input is argv after the program name, one argument
// per line. parse_command_line must return or throw mnist::Error (exit 2), never anything else
// (main() reports that as a bug, exit 1); what it accepts must convert to a run and a data source.
#include <cstddef>
#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

#include "app/cli.h"
#include "error.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool muted = [] {  // --help and --version print; keep the fuzzer's output readable
    std::cout.setstate(std::ios::badbit);
    return true;
  }();
  (void)muted;

  std::vector<std::string> args = {"mnist-train"};
  std::string current;
  for (std::size_t i = 0; i < size; ++i) {
    if (data[i] == '\n') {
      args.push_back(current);
      current.clear();
    } else {
      current += static_cast<char>(data[i]);
    }
  }
  if (size > 0) args.push_back(current);
  std::vector<const char*> argv;
  for (const std::string& arg : args) argv.push_back(arg.c_str());

  try {
    const auto options = mnist::parse_command_line(static_cast<int>(argv.size()), argv.data());
    if (!options) return 0;
    const mnist::RunConfig run = mnist::run_config(*options);
    mnist::fuzz::require(run.max_steps >= 0 && run.eval_every >= 1 && run.train.batch_size >= 1,
                         "accepted counts are in range");
    mnist::fuzz::require(
        run.train.learning_rate > 0 && run.train.keep_prob > 0 && run.train.keep_prob <= 1,
        "accepted rates are in range");
    mnist::fuzz::require(run.checkpoint_every_steps >= 0 && run.checkpoint_every_seconds >= 0,
                         "checkpoint cadence is not negative");
    const mnist::DataSource source = mnist::data_source(*options);
    mnist::fuzz::require(source.timeout_s >= 0.1 && source.attempts >= 1, "download bounds");
  } catch (const mnist::Error& e) {
    mnist::fuzz::require(e.code() == mnist::ExitCode::kBadArguments,
                         "a bad command line is exit 2");
  }
  return 0;
}
