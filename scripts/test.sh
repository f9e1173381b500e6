#!/usr/bin/env bash
# Installs what is missing, builds everything and runs the test suite (the README's test command;
# CI runs exactly this on a fresh machine). GPU tests (label gpu) skip without a CUDA device; run
# them alone with: ctest --preset gpu
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/cuda/bin
scripts/install-deps.sh
scripts/fetch-test-data.sh
npm ci --silent --no-audit --no-fund --prefix tests/deploy  # the k8s schema validator
cmake --preset release
cmake --build --preset release
ctest --preset release -j "$(nproc)" "$@"
