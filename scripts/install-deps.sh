#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages mnist-train builds and tests with (run as root, or with sudo).
# First checks what no distribution package provides: NVIDIA's CUDA 13 toolkit and NCCL 2
# (scripts/check-prereqs.sh): when one is missing, it says which package to install and stops
# before installing anything. scripts/run.sh and scripts/test.sh run this first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/check-prereqs.sh
packages=(cmake g++ make libcurl4-openssl-dev zlib1g-dev libssl-dev libcli11-dev nlohmann-json3-dev
          libgtest-dev bc dataset-fashion-mnist python3
          python3-jsonschema prometheus  # the verdict tests: docs/result.schema.json, promtool
          clang libclang-rt-14-dev  # clang and its libFuzzer/sanitizer runtimes: the fuzz stage
          umoci runc ca-certificates  # the OCI images without Docker (scripts/build-image.sh, run-image.sh)
          skopeo  # pushes them to a registry (docs/IMAGE.md)
          jq)  # scripts/check-pool.sh reads the API's JSON (tests/deploy/check_pool.sh)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
# Node.js and npm (test data, manifest validation): keep whatever installation is there.
command -v npm >/dev/null || missing+=(nodejs npm)
if ((${#missing[@]})); then
  sudo=; [[ $(id -u) == 0 ]] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# kubectl renders the k8s/ kustomizations for the deploy tests. Debian does not package it: without
# it those tests report as skipped (and fail under CI).
command -v kubectl >/dev/null ||
  echo "note: kubectl not found: the deploy tests that render k8s/ (kubectl kustomize) will be skipped; install kubectl 1.27 or newer to run them" >&2
