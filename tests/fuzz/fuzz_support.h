// What the fuzz targets share. A target feeds its input to the code under test, catches
// mnist::Error (the documented way to refuse input) and lets anything else escape: libFuzzer
// reports an escaping exception, a crash, a sanitizer report or a failed property as a finding.
#pragma once

#include <cstdio>
#include <cstdlib>

namespace mnist::fuzz {

// A property every accepted input must have (e.g. "re-encodes to itself"); a violation aborts,
// which libFuzzer (and replay_main.cpp) report as a finding.
inline void require(bool holds, const char* property) {
  if (holds) return;
  std::fprintf(stderr, "fuzz property violated: %s\n", property);
  std::abort();
}

}  // namespace mnist::fuzz
