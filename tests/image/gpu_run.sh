#!/usr/bin/env bash
# gpu_run.sh CARRY [ARGS...]: on a GPU machine, the node-check image's layer A (gpu_carry.sh made
# CARRY) run as the single-GPU Job runs it: the image's user, a read-only root, the GPU and the
# driver's libraries added as GKE's device plugin adds them (scripts/run-image.sh --gpus). ARGS
# default to the Job's (--max_steps 500 --backend cuda); the data come from CARRY/mnist on
# MNIST_BAKED_DATA's folder. The first runtime set-up that runs --version is used (runc, then crun;
# created device nodes, then bind mounts; then without a network namespace of its own). Then:
# the Job's run must pass (exit 0, "passed" termination line, result.json by user 65532), and
# --backend cublas must exit 2 naming libcublasLt.so.13 (the node check has none). Exits 1 on
# any failure. Times each run (the pod-start-to-verdict estimate's run time: docs/IMAGE.md).
# GPU_RUN_GPUS= (empty) leaves the GPU out, to try this script on a machine without one.
set -uo pipefail
for tool in python3 tar; do
  command -v "$tool" >/dev/null || { echo "FAIL $tool not found: scripts/run-image.sh needs it"; exit 1; }
done
carry=$(cd "$1" && pwd)
shift
args=("$@")
((${#args[@]})) || args=(--max_steps 500 --backend cuda)
root=$(cd "$(dirname "$0")/../.." && pwd)
run_image=$root/scripts/run-image.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bundle/rootfs"
tar -xzf "$carry/layer-a.tar.gz" -C "$work/bundle/rootfs" --numeric-owner --same-permissions
cp "$carry/config.json" "$work/bundle/"
nvidia-smi -L 2>/dev/null || true
chosen=()
# This machine's runtimes first, then the carried ones (with their libraries).
gpus=${GPU_RUN_GPUS---gpus}
runtimes=()
for rt in runc crun; do command -v "$rt" >/dev/null && runtimes+=("--runtime $(command -v "$rt")"); done
for rt in runc crun; do [[ -x $carry/$rt ]] && runtimes+=("--runtime $carry/$rt --runtime-libs $carry/lib"); done
for runtime in "${runtimes[@]}"; do
  for opts in "" "--gpu-devices bind" "--host-network" "--gpu-devices bind --host-network"; do
    # shellcheck disable=SC2086  # $runtime, $opts: several words or none
    if out=$("$run_image" $runtime $gpus $opts "$work/bundle" -- --version 2>&1); then
      echo "runtime: $runtime $opts ($(tail -n 1 <<<"$out"))"
      read -ra chosen <<<"$runtime $gpus $opts"
      break 2
    fi
    echo "not with $runtime $opts: $(tail -n 3 <<<"$out")"
  done
done
((${#chosen[@]})) || { echo "FAIL no runtime set-up runs the image here"; exit 1; }

failures=0
mkdir -p "$work/tf"
: >"$work/termination-log"
start=$(date +%s%N)
"$run_image" "${chosen[@]}" --work "$work/tf" --termination-log "$work/termination-log" \
  --mount "$carry/mnist:/opt/mnist-data" --env NODE_NAME="$(hostname)" "$work/bundle" -- "${args[@]}"
rc=$?
end=$(date +%s%N)
echo "== exit $rc after $(((end - start) / 1000000)) ms (container start to exit): ${args[*]}"
echo "termination line: $(cat "$work/termination-log")"
[[ $rc == 0 ]] || { echo "FAIL the Job's run exited $rc"; failures=$((failures + 1)); }
grep -q "^mnist-train [0-9.]* passed: .*| reason=ok node=" "$work/termination-log" || { echo "FAIL termination line"; failures=$((failures + 1)); }
[[ $(stat -c %u "$work/tf/logs/result.json" 2>/dev/null) == 65532 ]] || { echo "FAIL no result.json by user 65532"; failures=$((failures + 1)); }
cp "$work/tf/logs/result.json" "${OUT:-/tmp}/image-gpu-result.json" 2>/dev/null && echo "result.json copied to ${OUT:-/tmp}/image-gpu-result.json"

: >"$work/termination-log"
"$run_image" "${chosen[@]}" --termination-log "$work/termination-log" "$work/bundle" -- --backend cublas --max_steps 10 >/dev/null 2>&1
rc=$?
line=$(cat "$work/termination-log")
echo "== --backend cublas: exit $rc: $line"
[[ $rc == 2 && $line =~ libcublasLt\.so\.13.*cannot\ be\ loaded.*reason=library_missing ]] ||
  { echo "FAIL --backend cublas in the node check: expected exit 2 naming libcublasLt.so.13"; failures=$((failures + 1)); }
((failures == 0)) && echo "ok   the node-check image's layer A passes the Job's run on this GPU machine"
((failures == 0))
