#!/usr/bin/env bash
# Installs what is missing, builds everything and runs the test suite (the README's test command;
# CI runs exactly this on a fresh machine). Its set-up checks for the CUDA 13 toolkit and NCCL 2
# first (scripts/check-prereqs.sh, through install-deps.sh: one line naming what to install, before
# CMake runs), then installs the Debian packages, the test data and the deploy checks' npm
# packages. Then three stages, each timed:
#   release  the release build and its whole suite (extra arguments go to this ctest, e.g. -L gpu)
#   asan     the host code under AddressSanitizer + UndefinedBehaviorSanitizer (the asan preset),
#            CPU tests
#   fuzz     the libFuzzer targets (tests/fuzz/run.sh): past findings replayed, then FUZZ_SECONDS
#            (default 60) of fuzzing per target
# STAGES picks a subset (STAGES=release scripts/test.sh -L '^gpu$' on a GPU machine). GPU tests (label
# gpu) skip without a CUDA device; run them alone with: ctest --preset gpu
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/cuda/bin
stages=${STAGES:-release asan fuzz}
timings=()

# stage NAME COMMAND...: runs and times one step; the summary at the end lists them all.
stage() {
  local name=$1 start=$SECONDS
  shift
  echo "=== $name"
  "$@"
  timings+=("$(printf '%-28s %5d s' "$name" $((SECONDS - start)))")
}
wants() { [[ " $stages " == *" $1 "* ]]; }

stage "set-up" bash -c 'scripts/install-deps.sh && scripts/fetch-test-data.sh &&
  npm ci --silent --no-audit --no-fund --prefix tests/deploy'  # the k8s schema validator
if wants release; then
  stage "release: build" bash -c 'cmake --preset release && cmake --build --preset release'
  stage "release: ctest" ctest --preset release -j "$(nproc)" "$@"
fi
if wants asan; then
  stage "asan: build" bash -c 'cmake --preset asan && cmake --build --preset asan'
  stage "asan: ctest (cpu)" ctest --preset asan -j "$(nproc)"
fi
if wants fuzz; then
  stage "fuzz: build, replay, fuzz" env FUZZ_SECONDS="${FUZZ_SECONDS:-60}" tests/fuzz/run.sh
fi

echo "=== all stages passed"
printf '%s\n' "${timings[@]}"
