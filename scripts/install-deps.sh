#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages mnist-train builds and tests with (run as root, or with sudo).
# The CUDA toolkit (nvcc, cudart) is expected in /usr/local/cuda or on PATH, as NVIDIA ships it.
set -euo pipefail
packages=(cmake g++ make libcurl4-openssl-dev zlib1g-dev libssl-dev libcli11-dev nlohmann-json3-dev
          libgtest-dev bc dataset-fashion-mnist python3
          clang libclang-rt-14-dev)  # clang and its libFuzzer/sanitizer runtimes: the fuzz stage
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
# Node.js and npm (test data, manifest validation): keep whatever installation is there.
command -v npm >/dev/null || missing+=(nodejs npm)
if ((${#missing[@]})); then
  sudo=; [[ $(id -u) == 0 ]] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
command -v nvcc >/dev/null || [[ -x /usr/local/cuda/bin/nvcc ]] || {
  echo "error: the CUDA toolkit (nvcc) is not installed; see https://developer.nvidia.com/cuda-downloads" >&2; exit 1; }
