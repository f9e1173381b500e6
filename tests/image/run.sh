#!/usr/bin/env bash
# run.sh CASE IMAGE_DIR VERSION IDX_DIR: runs an image image_build unpacked with an OCI runtime
# (scripts/run-image.sh: the image's user, a read-only root, a writable /tmp/tensorflow and
# /dev/termination-log, as the Job has them), without a GPU. CASE:
#   version            --version prints "mnist-train VERSION"
#   dry_run            --dry_run accepts the image's defaults (data under /tmp/tensorflow)
#   no_gpu             --backend cuda: exit 4, the termination line "... | reason=no_device node=NODE"
#   read_only_root     a --log_dir outside the volume, in the image's /tmp (1777, so writable but for
#                      the read-only root), cannot be written: exit 6
#   train_cpu          real MNIST from a read-only volume on MNIST_BAKED_DATA's folder, nothing
#                      downloaded: trains, passes a 0.9 accuracy floor, result.json by user 65532
#   cublas_missing     the node check without cuBLASLt: --backend cublas exits 2, naming
#                      libcublasLt.so.13
#   baseline_libraries the baseline's cuBLASLt resolves with the image's own loader,
#                      and --backend cublas gets past loading them (exit 4: no GPU)
#   nccl_resolves      the node check's loader finds NCCL by its soname (as the trainer's dlopen
#                      does for several GPUs); the single-GPU image's does not, and trains on the CPU
#                      all the same
set -uo pipefail
case_name=$1 image_dir=$2 version=$3 idx_dir=$4
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/image/common.sh
. "$here/common.sh"
need umoci python3
need_runtime
run_image=$here/../../scripts/run-image.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/tf"
failures=0
fail() { echo "FAIL $case_name: $*"; failures=$((failures + 1)); }
node=image-test-node
# run BUNDLE ARGS...: the trainer in BUNDLE; $rc, $work/out, $work/err, $work/termination-log.
run() {
  local bundle=$1
  shift
  : >"$work/termination-log"
  "$run_image" --work "$work/tf" --termination-log "$work/termination-log" --env NODE_NAME=$node \
    "${extra[@]}" "$bundle" -- "$@" >"$work/out" 2>"$work/err"
  rc=$?
}
expect_rc() {
  [[ $rc == "$1" ]] || { fail "exit $rc, expected $1"; sed 's/^/  /' "$work/out" "$work/err"; }
}
line() { cat "$work/termination-log"; }
extra=()
node_check=$(bundle_of node-check)

case $case_name in
  version)
    run "$node_check" --version
    expect_rc 0
    grep -qx "mnist-train $version" "$work/out" || fail "--version printed '$(cat "$work/out")'" ;;
  dry_run)
    run "$node_check" --dry_run
    expect_rc 0
    grep -q '^flags OK: .*data mnist in /tmp/tensorflow/input_data' "$work/out" || fail "no 'flags OK' line: $(cat "$work/out")" ;;
  no_gpu)
    run "$node_check" --backend cuda --max_steps 10
    expect_rc 4
    [[ $(line) =~ ^mnist-train\ $version\ failed\ \(exit\ 4,\ .*\|\ reason=no_device\ node=$node$ ]] ||
      fail "termination line: '$(line)'"
    grep -q '"exit_code": 4,' "$work/tf/logs/result.json" 2>/dev/null || fail "no result.json saying exit 4 in the volume" ;;
  read_only_root)
    run "$node_check" --fake_data --backend cpu --max_steps 1 --log_dir /tmp/outside-the-volume
    expect_rc 6
    [[ $(line) == *"reason="* ]] || fail "no termination line: '$(line)'" ;;
  train_cpu)
    [[ -f $idx_dir/train-images-idx3-ubyte ]] || { fail "no MNIST idx files in $idx_dir (scripts/fetch-test-data.sh)"; exit 1; }
    mkdir -p "$work/data"
    for f in "$idx_dir"/*-ubyte; do gzip -1 -c "$f" >"$work/data/$(basename "$f").gz"; done
    extra=(--mount "$work/data:/opt/mnist-data")
    # No --mirror and no network (the container has its own, empty, network namespace): the files
    # can only come from the baked folder.
    run "$node_check" --backend cpu --max_steps 100 --min_accuracy 0.9
    expect_rc 0
    [[ $(line) =~ ^mnist-train\ $version\ passed:\ .*\|\ reason=ok\ node=$node$ ]] || fail "termination line: '$(line)'"
    result=$work/tf/logs/result.json
    python3 - "$result" <<'PY' || fail "result.json: $(head -c 600 "$result" 2>/dev/null)"
import json, sys
r = json.load(open(sys.argv[1]))
acc = next(c for c in r["checks"] if c["name"] == "accuracy")
assert r["verdict"] == "passed" and r["exit_code"] == 0 and r["backend"] == "cpu", r
assert acc["threshold"] == 0.9 and acc["value"] >= 0.9 and acc["status"] == "pass", acc
PY
    [[ $(stat -c %u:%g "$result" 2>/dev/null) == 65532:65532 ]] || fail "result.json is not the image user's: $(stat -c %u:%g "$result" 2>&1)"
    [[ -f $work/tf/input_data/train-images-idx3-ubyte.gz ]] || fail "the data were not copied into --data_dir" ;;
  cublas_missing)
    run "$node_check" --backend cublas --fake_data --max_steps 1
    expect_rc 2
    [[ $(line) =~ libcublasLt\.so\.13.*cannot\ be\ loaded.*\|\ reason=library_missing\ node=$node$ ]] ||
      fail "termination line: '$(line)'" ;;
  baseline_libraries)
    baseline=$(bundle_of baseline)
    lib=/usr/lib/x86_64-linux-gnu/libcublasLt.so.13
    if ! "$run_image" --entrypoint /lib64/ld-linux-x86-64.so.2 "$baseline" -- --list "$lib" >"$work/out" 2>&1 ||
       grep -q 'not found' "$work/out"; then
      fail "$lib does not resolve in the baseline:"; sed 's/^/  /' "$work/out"
    fi
    run "$baseline" --backend cublas --fake_data --max_steps 1
    expect_rc 4
    [[ $(line) == *"| reason=no_device node=$node" ]] || fail "termination line: '$(line)'" ;;
  nccl_resolves)
    # --preload takes a soname and searches as dlopen does (the loader's cache, LD_LIBRARY_PATH).
    "$run_image" --entrypoint /lib64/ld-linux-x86-64.so.2 "$node_check" -- --preload libnccl.so.2 \
      --list /usr/local/bin/mnist-train >"$work/out" 2>&1
    grep -Eq '^\s*libnccl\.so\.2 => /(usr/)?lib/x86_64-linux-gnu/libnccl\.so\.2 ' "$work/out" ||
      { fail "the node check's loader does not find libnccl.so.2:"; sed 's/^/  /' "$work/out"; }
    ! grep -q 'not found' "$work/out" || { fail "a library is missing:"; sed 's/^/  /' "$work/out"; }
    single=$(bundle_of single-gpu)
    ! "$run_image" --entrypoint /lib64/ld-linux-x86-64.so.2 "$single" -- --preload libnccl.so.2 \
      --list /usr/local/bin/mnist-train 2>&1 | grep -q '=> .*libnccl' || fail "the single-GPU image holds NCCL"
    run "$single" --backend cpu --fake_data --max_steps 20
    expect_rc 0 ;;
  *) echo "run.sh: unknown case $case_name"; exit 2 ;;
esac
((failures == 0)) && echo "ok   $case_name"
((failures == 0))
