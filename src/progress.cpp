#include "progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>

namespace mnist {
namespace {

using Clock = std::chrono::steady_clock;

// Off (the default) costs one relaxed load per call; the line itself is guarded, since downloads
// may run on other threads than the training loop.
std::atomic<bool> enabled{false};
std::mutex line_mutex;
bool shown = false;
Clock::time_point last_shown;
std::size_t columns = 0;  // the terminal's width when known: a longer line would wrap, and "\r"
                          // would then leave its first part behind

std::size_t terminal_columns() {
  winsize size{};
  if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 1) return size.ws_col;
  return 0;
}

void erase_locked() {
  if (!shown) return;
  std::fputs("\r\033[K", stderr);
  std::fflush(stderr);
  shown = false;
}

}  // namespace

void enable_status_line(bool on) {
  std::lock_guard<std::mutex> lock(line_mutex);
  if (!on) erase_locked();
  if (on) columns = terminal_columns();
  enabled = on;
}

bool status_line_enabled() { return enabled.load(std::memory_order_relaxed); }

void show_status(const std::string& text, bool now) {
  if (!enabled.load(std::memory_order_relaxed)) return;
  std::lock_guard<std::mutex> lock(line_mutex);
  const auto t = Clock::now();
  if (!now && shown && t - last_shown < std::chrono::milliseconds(100)) return;
  const std::string shown_text =
      columns && text.size() >= columns ? text.substr(0, columns - 1) : text;
  std::fprintf(stderr, "\r%s\033[K", shown_text.c_str());
  std::fflush(stderr);
  shown = true;
  last_shown = t;
}

void clear_status() {
  if (!enabled.load(std::memory_order_relaxed)) return;
  std::lock_guard<std::mutex> lock(line_mutex);
  erase_locked();
}

}  // namespace mnist
