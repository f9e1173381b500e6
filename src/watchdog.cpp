#include "watchdog.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <system_error>

#include "error.h"

namespace mnist {
namespace {

using Clock = std::chrono::steady_clock;

// The time is stored before the phase (release) and read after it (acquire): a reader that sees a
// phase sees its heartbeat's time or a later one, never a new phase with an older time.
std::atomic<Clock::rep> g_beat_ticks{0};
std::atomic<const char*> g_phase{"startup"};
static_assert(std::atomic<Clock::rep>::is_always_lock_free);
static_assert(std::atomic<const char*>::is_always_lock_free);

Clock::duration to_duration(double seconds) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

double seconds_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

constexpr int kStalledExit = static_cast<int>(ExitCode::kGpuUnusable);

}  // namespace

void heartbeat(const char* phase) noexcept {
  g_beat_ticks.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
  g_phase.store(phase ? phase : "unnamed", std::memory_order_release);
}

Heartbeat last_heartbeat() noexcept {
  const char* phase = g_phase.load(std::memory_order_acquire);
  return {phase, Clock::time_point(Clock::duration(g_beat_ticks.load(std::memory_order_relaxed)))};
}

std::string stall_message(const Stall& stall) {
  char text[256];
  std::snprintf(text, sizeof text,
                "stalled: no progress for %.1f s in phase %s (its limit is %g s): a GPU, driver or "
                "file system call does not return",
                stall.silent_s, stall.phase, stall.limit_s);
  return text;
}

Watchdog::Watchdog(double limit_s, OnStall on_stall, double callback_bound_s)
    : limit_s_(limit_s),
      callback_bound_s_(callback_bound_s),
      on_stall_(std::move(on_stall)),
      started_(Clock::now()),
      allowances_{{"cuda_init", std::max(limit_s, kSlowPhaseLimitS)},
                  {"download", std::max(limit_s, kSlowPhaseLimitS)}} {
  if (limit_s_ > 0) thread_ = std::thread(&Watchdog::watch, this);
}

Watchdog::~Watchdog() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Watchdog::allow(const std::string& phase, double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& [name, limit] : allowances_) {
    if (name == phase) {
      limit = seconds;
      return;
    }
  }
  allowances_.emplace_back(phase, seconds);
}

double Watchdog::allowance_locked(const char* phase) const {
  for (const auto& [name, limit] : allowances_) {
    if (name == phase) return limit;
  }
  return limit_s_;
}

void Watchdog::watch() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stopping_) {
    const Heartbeat beat = last_heartbeat();
    const Clock::time_point since = std::max(beat.at, started_);  // older heartbeats: before us
    const double limit = allowance_locked(beat.phase);
    const Clock::time_point now = Clock::now();
    if (now - since >= to_duration(limit)) {
      lock.unlock();
      end_run({beat.phase, seconds_between(since, now), limit});
    }
    // Sleeps until this phase's deadline, or a quarter of the shortest allowance: a heartbeat of
    // a phase with a shorter allowance may bring the deadline closer.
    double shortest = limit_s_;
    for (const auto& allowance : allowances_) shortest = std::min(shortest, allowance.second);
    const auto poll =
        std::max<Clock::duration>(to_duration(shortest / 4), std::chrono::milliseconds(1));
    wake_.wait_until(lock, std::min(since + to_duration(limit), now + poll));
  }
}

void Watchdog::end_run(const Stall& stall) {
  // A callback that hangs too (a verdict file on a hung volume) must not hang the pod.
  try {
    std::thread([bound = callback_bound_s_] {
      std::this_thread::sleep_for(to_duration(bound));
      static const char kLine[] =
          "mnist-train: error: stalled, and the verdict was not written in time\n";
      [[maybe_unused]] const ssize_t written = ::write(STDERR_FILENO, kLine, sizeof kLine - 1);
      ::_exit(kStalledExit);
    }).detach();
  } catch (const std::system_error&) {  // no thread to bound it: end without the callback
    std::fputs(("mnist-train: error: " + stall_message(stall) + "\n").c_str(), stderr);
    ::_exit(kStalledExit);
  }
  int code = 0;
  try {
    if (on_stall_)
      code = on_stall_(stall);
    else
      std::cerr << "mnist-train: error: " << stall_message(stall) << std::endl;
  } catch (...) {  // the process ends either way
  }
  ::_exit(code != 0 ? code : kStalledExit);
}

}  // namespace mnist
