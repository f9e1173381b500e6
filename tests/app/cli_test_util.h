// The command-line tests' helpers: argv from a list, and the refusal (exit 2) a list earns.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
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

// A rendezvous secret file (64 hex characters and a newline, as `openssl rand -hex 32` writes
// it), made once per test process and removed at its exit: what --world_size > 1 needs.
class SecretFile {
 public:
  explicit SecretFile(const std::string& content) {
    char name[] = "/tmp/mnist-cli-secret-XXXXXX";
    const int fd = ::mkstemp(name);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(::write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
    ::close(fd);
    path_ = name;
  }
  ~SecretFile() { ::unlink(path_.c_str()); }
  SecretFile(const SecretFile&) = delete;
  SecretFile& operator=(const SecretFile&) = delete;
  const char* path() const { return path_.c_str(); }

 private:
  std::string path_;
};

inline const char* secret_file() {
  static const SecretFile file(
      "5e0c2a9d8b7f6e5d4c3b2a1908f7e6d5c4b3a29180f7e6d5c4b3a2918f7e6d5c\n");
  return file.path();
}

inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace mnist::cli_test
