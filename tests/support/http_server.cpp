#include "http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

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

void send_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
    if (n <= 0) return;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
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

void HttpServer::answer(int client) {
  std::string request;
  char buf[4096];
  while (request.find("\r\n\r\n") == std::string::npos) {
    const ssize_t n = ::recv(client, buf, sizeof buf, 0);
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
  std::string head = "HTTP/1.1 " + std::to_string(r.status) +
                     " Scripted\r\nContent-Length: " + std::to_string(r.body.size()) +
                     "\r\nConnection: close\r\n\r\n";
  send_all(client, head.data(), head.size());
  send_all(client, r.body.data(), r.cut_short ? r.body.size() / 2 : r.body.size());
}

HttpServer::Handler serve_directory(const std::string& dir) {
  return [dir](const std::string& path) {
    if (path.find("..") != std::string::npos) return HttpResponse{403, "", false};
    std::ifstream in(dir + path, std::ios::binary);
    if (!in) return HttpResponse{404, "not found", false};
    return HttpResponse{
        200, std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()),
        false};
  };
}

}  // namespace mnist::testing
