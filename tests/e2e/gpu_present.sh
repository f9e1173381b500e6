# shellcheck shell=bash
# Sourced by the GPU end-to-end scripts. gpu_present succeeds when this machine has an NVIDIA GPU,
# judged from the device list alone: a device node /dev/nvidiaN, or a GPU in `nvidia-smi -L`.
# Never from whether the trainer runs: on a machine with a GPU, a trainer that crashes or a driver
# that fails is a test failure, not a skip. MNIST_TEST_DEVICE_NODES (a glob; the scripts' own
# tests set it) replaces /dev/nvidia[0-9]*.
gpu_present() {
  local node
  for node in ${MNIST_TEST_DEVICE_NODES:-/dev/nvidia[0-9]*}; do
    [[ -e $node ]] && return 0
  done
  command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU '
}

# require_gpu TRAINER BACKEND: exits 77 (skipped) without a GPU; with one, fails (exit 1) unless
# the trainer can use it (a zero-step run on fake data).
require_gpu() {
  local trainer=$1 backend=$2 out
  gpu_present || { echo "SKIP: no NVIDIA GPU on this machine"; exit 77; }
  if ! out=$("$trainer" --backend "$backend" --fake_data --max_steps 0 --log_dir "" 2>&1); then
    echo "$out" | tail -5
    echo "FAIL: this machine has a GPU, but mnist-train --backend $backend cannot use it (above)"
    exit 1
  fi
}
