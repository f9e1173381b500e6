#include "http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>

namespace mnist::testing {
namespace {

int bind_loopback(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket");
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    throw std::runtime_error("bind");
  }
  return fd;
}

int local_port(int fd) {
  sockaddr_in addr{};
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  return ntohs(addr.sin_port);
}

// The client socket's send/receive time-outs: a blocked call returns now and then, so that a
// stalled client cannot keep the server from stopping.
void set_io_timeouts(int fd) {
  timeval tv{0, 100 * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

}  // namespace

int unused_port() {
  const int fd = bind_loopback(0);
  const int port = local_port(fd);
  ::close(fd);
  return port;
}

HttpServer::HttpServer(Handler handler) : handler_(std::move(handler)) {
  listener_ = bind_loopback(0);
  if (::listen(listener_, 16) != 0) throw std::runtime_error("listen");
  port_ = local_port(listener_);
  thread_ = std::thread([this] { serve(); });
}

HttpServer::~HttpServer() {
  stop_ = true;
  thread_.join();
  ::close(listener_);
}

int HttpServer::requests(const std::string& path) const {
  std::lock_guard<std::mutex> lock(mutex_);
  const auto it = counts_.find(path);
  return it == counts_.end() ? 0 : it->second;
}

int HttpServer::total_requests() const {
  std::lock_guard<std::mutex> lock(mutex_);
  int total = 0;
  for (const auto& [path, n] : counts_) total += n;
  return total;
}

void HttpServer::serve() {
  while (!stop_) {
    pollfd p{listener_, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    const int client = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    answer(client);
    ::close(client);
  }
}

bool HttpServer::send_all(int client, const char* data, std::size_t size) const {
  while (size > 0) {
    const ssize_t n = ::send(client, data, size, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) && !stop_) continue;
    if (n <= 0) return false;  // the client hung up (or the server is stopping)
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

// Waits `seconds`; false as soon as the client hangs up or the server is stopping.
bool HttpServer::wait_while_connected(int client, double seconds) const {
  using Clock = std::chrono::steady_clock;
  const auto end = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(seconds));
  for (auto now = Clock::now(); now < end; now = Clock::now()) {
    if (stop_) return false;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - now).count();
    pollfd p{client, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(std::clamp<long long>(left, 1, 20))) > 0) {
      char buf[512];  // anything the client sends now is ignored; nothing (EOF) means it left
      if (::recv(client, buf, sizeof buf, MSG_DONTWAIT) <= 0) return false;
    }
  }
  return true;
}

void HttpServer::answer(int client) {
  set_io_timeouts(client);
  std::string request;
  char buf[4096];
  while (request.find("\r\n\r\n") == std::string::npos) {
    const ssize_t n = ::recv(client, buf, sizeof buf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) && !stop_) continue;
    if (n <= 0) return;
    request.append(buf, static_cast<std::size_t>(n));
  }
  std::istringstream line(request.substr(0, request.find("\r\n")));
  std::string method, path;
  line >> method >> path;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    counts_[path] += 1;
  }
  const HttpResponse r = handler_(path);
  std::string head = "HTTP/1.1 " + std::to_string(r.status) + " Scripted\r\n";
  if (!r.endless) head += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
  if (!r.location.empty()) head += "Location: " + r.location + "\r\n";
  head += "Connection: close\r\n\r\n";
  if (!send_all(client, head.data(), head.size())) return;
  if (r.stall_s > 0 && !wait_while_connected(client, r.stall_s)) return;
  if (r.endless) {
    const std::string block = r.body.empty() ? std::string(1 << 16, '\0') : r.body;
    while (send_all(client, block.data(), block.size())) {
    }
    return;
  }
  const std::size_t size = r.cut_short ? r.body.size() / 2 : r.body.size();
  const std::size_t chunk = r.chunk_bytes > 0 ? r.chunk_bytes : std::max<std::size_t>(size, 1);
  for (std::size_t done = 0; done < size; done += chunk) {
    if (r.chunk_delay_ms > 0 && !wait_while_connected(client, r.chunk_delay_ms / 1000.0)) return;
    if (!send_all(client, r.body.data() + done, std::min(chunk, size - done))) return;
  }
}

HttpServer::Handler serve_directory(const std::string& dir, HttpResponse pace) {
  return [dir, pace](const std::string& path) {
    if (path.find("..") != std::string::npos) return HttpResponse{403, "", false};
    std::ifstream in(dir + path, std::ios::binary);
    if (!in) return HttpResponse{404, "not found", false};
    HttpResponse r;
    r.body.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    r.chunk_bytes = pace.chunk_bytes;
    r.chunk_delay_ms = pace.chunk_delay_ms;
    return r;
  };
}

}  // namespace mnist::testing
