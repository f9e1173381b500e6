// The stall watchdog: a hung GPU (or driver, or file system) leaves the process blocked in a call
// that never returns, and the Job would wait out its whole activeDeadlineSeconds. Every layer
// reports progress with heartbeat("phase"): each training step and evaluation, each chunk of a
// download, each checkpoint read or write, the start of a rendezvous or NCCL wait (those carry
// their own deadlines). A Watchdog ends the run when a phase goes longer than its allowance
// without a heartbeat.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace mnist {

// Records progress: now, in `phase`. Lock-free and cheap (a clock read, two atomic stores): any
// thread may call it as often as it likes, with or without a Watchdog. `phase` must outlive the
// program (a string literal).
void heartbeat(const char* phase) noexcept;

struct Heartbeat {
  const char* phase;  // "startup" before the first heartbeat
  std::chrono::steady_clock::time_point at;
};
Heartbeat last_heartbeat() noexcept;

// A stall, as the watchdog found it.
struct Stall {
  const char* phase;  // the last heartbeat's
  double silent_s;    // seconds since that heartbeat
  double limit_s;     // the phase's allowance
};
// "stalled: no progress for 121.3 s in phase training (its limit is 120 s): ..." (the error line).
std::string stall_message(const Stall& stall);

// The default allowance: far above any healthy step, evaluation or checkpoint write (milliseconds
// to a few seconds, even on a CPU), and well under the Job's 30-minute activeDeadlineSeconds, so
// that a hung node fails in about two minutes with a verdict naming it, not silently at the
// deadline.
constexpr double kDefaultStallLimitS = 120.0;
// The phases "cuda_init" (a first CUDA context: driver load, JIT, many GPUs) and "download" (a
// shared data cache waited for, a slow mirror; libcurl's own timeouts bound each attempt) may
// take longer: they get at least this much.
constexpr double kSlowPhaseLimitS = 600.0;
// How long the stall callback may take before the watchdog ends the process anyway.
constexpr double kStallCallbackBoundS = 10.0;

// Watches the heartbeats from its own thread, started by the constructor and joined by the
// destructor (which wakes it: destruction is prompt). When the current phase has gone longer
// than its allowance without a heartbeat, the watchdog thread calls `on_stall` and then ends the
// process with _exit(the code it returns; 4 when it returns 0 or throws). If `on_stall` has not
// returned after `callback_bound_s`, a second thread writes a line on stderr and calls _exit(4).
// No destructor runs and no stream is flushed: whatever must survive, `on_stall` writes.
//
// Threading contract: `on_stall` runs on the watchdog thread while the thread that stopped sending
// heartbeats is stuck somewhere (maybe inside a CUDA call, maybe holding a lock: the status
// line's, a stream's). It may read what that thread wrote before it got stuck (the run's record),
// write files and stderr, and must not wait on anything the stuck thread may hold; whatever it
// does is cut off after the bound. A `limit_s` of 0 (or less) turns the watchdog off: no thread.
class Watchdog {
 public:
  using OnStall = std::function<int(const Stall&)>;
  Watchdog(double limit_s, OnStall on_stall, double callback_bound_s = kStallCallbackBoundS);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // Gives `phase` its own allowance (replacing any other, the defaults' included), e.g. a
  // rendezvous its timeout and a margin. Any thread, any time.
  void allow(const std::string& phase, double seconds);

 private:
  double allowance_locked(const char* phase) const;
  void watch();
  [[noreturn]] void end_run(const Stall& stall);

  const double limit_s_, callback_bound_s_;
  const OnStall on_stall_;
  const std::chrono::steady_clock::time_point started_;
  std::mutex mutex_;  // guards the fields below
  std::condition_variable wake_;
  bool stopping_ = false;
  std::vector<std::pair<std::string, double>> allowances_;
  std::thread thread_;  // last: it starts once everything it reads is built
};

}  // namespace mnist
