// The live status line: one line on stderr that is rewritten in place ("\r", erase to the end) to
// show a download's or the training's progress. Only for a terminal: the program enables it when
// stderr is a TTY, so logs and pipes get plain output. Whoever writes other lines to the terminal
// clears it first.
#pragma once

#include <string>

namespace mnist {

// Turns the line on or off (off by default). The program turns it on when stderr is a TTY.
void enable_status_line(bool on);
bool status_line_enabled();

// Replaces the line's text; at most about ten times a second unless `now` (a final state).
void show_status(const std::string& text, bool now = false);

// Erases the line (if one is shown), so the next output starts on a clean line.
void clear_status();

}  // namespace mnist
