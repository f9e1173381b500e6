#!/usr/bin/env bash
# The README's first command: installs what is missing (scripts/install-deps.sh, which first checks
# for the CUDA 13 toolkit and NCCL 2), builds mnist-train and runs the main job: the TF sample's
# 500-step run (extra flags pass through).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/cuda/bin
scripts/install-deps.sh >&2
cmake --preset release >/dev/null
cmake --build --preset release --target mnist-train
exec build/release/mnist-train --max_steps 500 "$@"
