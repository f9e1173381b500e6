// The command-line tests' helpers: argv from a list, and the refusal (exit 2) a list earns.
#pragma once

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "app/cli.h"
#include "error.h"

namespace mnist::cli_test {

// parse_command_line of "mnist-train" followed by `args`.
inline std::optional<Options> parse(std::vector<const char*> args) {
  args.insert(args.begin(), "mnist-train");
  return parse_command_line(static_cast<int>(args.size()), args.data());
}

// The message of the refusal (exit 2) of `args`; fails the test when they are accepted.
inline std::string refusal(std::vector<const char*> args) {
  try {
    parse(std::move(args));
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kBadArguments) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "accepted";
  return "";
}

inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace mnist::cli_test
