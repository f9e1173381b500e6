#include "stop.h"

#include <csignal>

#include "error.h"

namespace mnist {
namespace {

volatile std::sig_atomic_t g_stop_signal = 0;

extern "C" void on_stop_signal(int signal) {
  if (g_stop_signal == 0) g_stop_signal = signal;
}

}  // namespace

void install_stop_handlers() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;  // no SA_RESTART: a blocking read or sleep returns EINTR and re-checks
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  // A closed pipe on stdout, or a file growing past the file-size limit (`ulimit -f`), is a
  // failed write (EPIPE, EFBIG: exit 6 with a message and a verdict), not a silent death.
  std::signal(SIGPIPE, SIG_IGN);
  std::signal(SIGXFSZ, SIG_IGN);
}

int stop_signal() { return g_stop_signal; }

void set_stop_signal_for_testing(int signal) { g_stop_signal = signal; }

void throw_stopped(const std::string& what, const std::string& saved) {
  const bool interrupted = stop_signal() == SIGINT;
  throw Error(interrupted ? ExitCode::kInterrupted : ExitCode::kTerminated,
              std::string("stopped by ") + (interrupted ? "SIGINT" : "SIGTERM") + " " + what +
                  (saved.empty() ? "" : "; " + saved));
}

void throw_if_stop_requested(const std::string& what, const std::string& saved) {
  if (stop_requested()) throw_stopped(what, saved);
}

}  // namespace mnist
