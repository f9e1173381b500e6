// A scripted HTTP/1.1 server on 127.0.0.1 for the downloader tests and the end-to-end test: each
// connection carries one GET; a handler decides the status and body, or cuts the body short.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

namespace mnist::testing {

struct HttpResponse {
  int status = 200;
  std::string body;
  bool cut_short = false;  // advertise the full Content-Length, send half the body, then close
};

class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const std::string& path)>;

  explicit HttpServer(Handler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/"; }
  int requests(const std::string& path) const;
  int total_requests() const;

 private:
  void serve();
  void answer(int client);

  Handler handler_;
  int listener_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  mutable std::mutex mutex_;
  std::map<std::string, int> counts_;
  std::thread thread_;
};

// A port on 127.0.0.1 that nothing listens on (bound, then closed).
int unused_port();

// Serves the files of a directory (404 for anything else).
HttpServer::Handler serve_directory(const std::string& dir);

}  // namespace mnist::testing
