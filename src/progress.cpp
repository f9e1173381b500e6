#include "progress.h"

#include <chrono>
#include <cstdio>

namespace mnist {
namespace {

using Clock = std::chrono::steady_clock;

bool enabled = false;
bool shown = false;
Clock::time_point last_shown;

}  // namespace

void enable_status_line(bool on) {
  if (!on) clear_status();
  enabled = on;
}

bool status_line_enabled() { return enabled; }

void show_status(const std::string& text, bool now) {
  if (!enabled) return;
  const auto t = Clock::now();
  if (!now && shown && t - last_shown < std::chrono::milliseconds(100)) return;
  std::fprintf(stderr, "\r%s\033[K", text.c_str());
  std::fflush(stderr);
  shown = true;
  last_shown = t;
}

void clear_status() {
  if (!enabled || !shown) return;
  std::fputs("\r\033[K", stderr);
  std::fflush(stderr);
  shown = false;
}

}  // namespace mnist
