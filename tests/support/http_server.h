// A scripted HTTP/1.1 server on 127.0.0.1 for the downloader tests and the end-to-end tests: each
// connection carries one GET, answered one at a time; a handler decides the status, headers and
// body, and how badly to send it (cut short, slowly, stalled, or without end).
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

namespace mnist::testing {

struct HttpResponse {
  int status = 200;
  std::string body;
  bool cut_short = false;       // advertise the full Content-Length, send half the body, then close
  std::string location = "";    // a Location header (redirects), when not empty
  double stall_s = 0;           // after the headers, send nothing for this long
  bool endless = false;         // no Content-Length; the body (or zeros) repeated until the client
                                // hangs up
  std::size_t chunk_bytes = 0;  // a slow body: this many bytes at a time ...
  int chunk_delay_ms = 0;       // ... each after this pause
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
  bool send_all(int client, const char* data, std::size_t size) const;
  bool wait_while_connected(int client, double seconds) const;

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

// Serves the files of a directory (404 for anything else); `pace` sets how slowly (its chunk
// fields; the rest is ignored).
HttpServer::Handler serve_directory(const std::string& dir, HttpResponse pace = {});

}  // namespace mnist::testing
