#!/usr/bin/env bash
# gpu_skip_check.sh SERVER IDX_DIR: the GPU end-to-end scripts (real_mnist.sh, summaries.sh,
# precision.sh) skip (77) only on a machine without a GPU; where one is present (a device node,
# faked here through MNIST_TEST_DEVICE_NODES), a trainer that fails or crashes, or an nvidia-smi
# that fails, is a failure (1). Stub trainers and a stub nvidia-smi: no GPU needed.
set -euo pipefail
server=$1 idx_dir=$2
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

mkdir -p "$work/no_gpu" "$work/broken_smi" "$work/gpu"
stub() { printf '#!/bin/sh\n%s\n' "$2" >"$1"; chmod +x "$1"; }
stub "$work/no_gpu/nvidia-smi" 'echo "No devices were found"; exit 6'
stub "$work/broken_smi/nvidia-smi" 'echo "NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver"; exit 9'
stub "$work/gpu/nvidia-smi" 'case "$*" in *compute_cap*) echo 9.0 ;; *) echo "GPU 0: NVIDIA H200 (UUID: GPU-0)" ;; esac'
stub "$work/exits_4" 'echo "mnist-train: error: CUDA driver version is insufficient for CUDA runtime version" >&2; exit 4'
stub "$work/crashes" 'kill -SEGV $$'
stub "$work/fails_training" 'case "$*" in *--fake_data*) exit 0 ;; *) exit 4 ;; esac'

# expect CODE SCRIPT BACKEND TRAINER NODES PATH_DIR: runs SCRIPT with a device-node glob and a
# stub nvidia-smi first on PATH; only PATH and HOME come from the caller.
expect() {
  local want=$1 script=$2 backend=$3 trainer=$4 nodes=$5 smi=$6 rc=0 args=()
  case $script in
    real_mnist.sh) args=("$trainer" "$server" "$idx_dir" "$backend" 500 490 0.95) ;;
    summaries.sh) args=("$trainer" "$server" "$idx_dir" "$backend") ;;
    precision.sh) args=("$trainer" "$server" "$idx_dir" "$backend" 500 490) ;;
  esac
  env -i PATH="$work/$smi:$PATH" HOME="$work" MNIST_TEST_DEVICE_NODES="$nodes" \
    bash "$here/$script" "${args[@]}" >"$work/log" 2>&1 || rc=$?
  (( rc == want )) || { cat "$work/log"; fail "$script $backend, $(basename "$trainer"), nodes $nodes, $smi nvidia-smi: exit $rc, expected $want"; }
  echo "ok: $script $backend, $(basename "$trainer"), nodes $nodes, $smi nvidia-smi: exit $rc: $(tail -1 "$work/log")"
}

for script in real_mnist.sh summaries.sh precision.sh; do
  for backend in cuda cublas; do
    expect 77 $script $backend "$work/exits_4" "$work/none*" no_gpu
    expect 1 $script $backend "$work/exits_4" / gpu
    expect 1 $script $backend "$work/crashes" / gpu
    expect 1 $script $backend "$work/exits_4" "$work/none*" gpu  # nvidia-smi lists a GPU
  done
done
expect 1 precision.sh cuda "$work/fails_training" / broken_smi
expect 1 precision.sh cuda "$work/fails_training" / gpu
expect 1 real_mnist.sh cuda "$work/fails_training" / gpu
echo "PASS: the GPU scripts skip only without a GPU; a failing trainer or driver on a GPU machine fails"
