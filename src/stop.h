// The stop request: SIGTERM (Kubernetes stopping the pod) and SIGINT (Ctrl-C) set it; every stage
// that can run long (downloads, verification, training, evaluation, checkpoint writes) polls it and
// stops within about a second with Error(kTerminated) or Error(kInterrupted).
#pragma once

#include <string>

namespace mnist {

// Installs the SIGTERM and SIGINT handlers, and ignores SIGPIPE and SIGXFSZ so that a write to a
// closed pipe or past the file-size limit fails (EPIPE, EFBIG) instead of killing the process
// (once, at start).
void install_stop_handlers();

// The signal that asked the program to stop, or 0.
int stop_signal();
inline bool stop_requested() { return stop_signal() != 0; }

// Throws Error(kTerminated) after SIGTERM, Error(kInterrupted) after SIGINT, naming `what` was
// interrupted and `saved` (what was kept, e.g. "checkpoint saved in DIR"; empty: nothing).
void throw_if_stop_requested(const std::string& what, const std::string& saved = "");
[[noreturn]] void throw_stopped(const std::string& what, const std::string& saved = "");

// For tests: behave as if `signal` (SIGTERM or SIGINT; 0 clears) had arrived.
void set_stop_signal_for_testing(int signal);

}  // namespace mnist
