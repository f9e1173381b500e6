// mnist_test_server DIR PORT_FILE: serves DIR on 127.0.0.1 (port written to PORT_FILE) until
// it is killed. The end-to-end test serves the real MNIST files with it, so the
// trainer's download path is exercised over loopback.
#include <unistd.h>

#include <fstream>
#include <iostream>

#include "http_server.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: mnist_test_server DIR PORT_FILE\n";
    return 2;
  }
  mnist::testing::HttpServer server(mnist::testing::serve_directory(argv[1]));
  std::ofstream(argv[2]) << server.port() << "\n";
  std::cout << "serving " << argv[1] << " at " << server.url() << std::endl;
  for (;;) pause();  // until SIGTERM/SIGINT ends the process
}
