// mnist_test_server DIR PORT_FILE [--chunk_bytes N --chunk_delay_ms MS]: serves DIR on 127.0.0.1
// (port written to PORT_FILE) until it is killed, optionally slowly (N bytes, each after a pause of
// MS). Each request is logged on stdout as "request PATH", so a test can count them per file.
// The end-to-end tests serve the real MNIST files with it, so the trainer's download path is
// exercised over loopback.
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>

#include "http_server.h"

namespace {

int usage() {
  std::cerr << "usage: mnist_test_server DIR PORT_FILE [--chunk_bytes N --chunk_delay_ms MS]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3 || argc % 2 == 0) return usage();
  mnist::testing::HttpResponse pace;
  for (int i = 3; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const long value = std::strtol(argv[i + 1], nullptr, 10);
    if (value < 0) return usage();
    if (flag == "--chunk_bytes") {
      pace.chunk_bytes = static_cast<std::size_t>(value);
    } else if (flag == "--chunk_delay_ms") {
      pace.chunk_delay_ms = static_cast<int>(value);
    } else {
      return usage();
    }
  }
  const auto serve = mnist::testing::serve_directory(argv[1], pace);
  mnist::testing::HttpServer server([&serve](const std::string& path) {
    std::cout << "request " << path << std::endl;  // flushed: the test reads it while we run
    return serve(path);
  });
  std::ofstream(argv[2]) << server.port() << "\n";
  std::cout << "serving " << argv[1] << " at " << server.url() << std::endl;
  for (;;) pause();  // until SIGTERM/SIGINT ends the process
}
