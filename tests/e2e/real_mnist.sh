#!/usr/bin/env bash
# real_mnist.sh TRAINER SERVER IDX_DIR BACKEND MAX_STEPS CHECK_STEP MIN_ACCURACY
# Gzips the real MNIST idx files, serves them on loopback, trains with the given backend and
# checks the accuracy lines; then runs again to check that the cached files are reused.
set -euo pipefail
source "$(dirname "$0")/serve_mnist.sh"
trainer=$1 server=$2 idx_dir=$3 backend=$4 max_steps=$5 check_step=$6 min_accuracy=$7

if [[ $backend != cpu ]] && ! "$trainer" --backend cuda --fake_data --max_steps 0 --log_dir "" >/dev/null 2>&1; then
  echo "SKIP: no usable CUDA GPU"; exit 77
fi
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  [[ -f $idx_dir/$f ]] || { echo "FAIL: $idx_dir/$f is missing: run scripts/fetch-test-data.sh"; exit 1; }
done

work=$(mktemp -d)
server_pid=
cleanup() { [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
serve_mnist "$server" "$idx_dir" "$work"

run() {
  "$trainer" --backend "$backend" --max_steps "$max_steps" --mirror "$mirror" --data_dir "$work/cache" \
    --log_dir "$work/logs" --download_attempts 1 | tee "$work/out"
}
start=$(date +%s.%N)
run
echo "wall: $(echo "$(date +%s.%N) - $start" | bc) s"

fail() { echo "FAIL: $*"; exit 1; }
lines=$(grep -c '^Accuracy at step ' "$work/out")
(( lines == max_steps / 10 )) || fail "expected $((max_steps / 10)) accuracy lines, got $lines"
(( $(grep -c '^Successfully downloaded ' "$work/out") == 4 )) || fail "expected 4 downloads"
accuracy=$(sed -n "s/^Accuracy at step $check_step: //p" "$work/out")
[[ -n $accuracy ]] || fail "no line for step $check_step"
awk -v a="$accuracy" -v m="$min_accuracy" 'BEGIN { exit !(a >= m) }' \
  || fail "accuracy at step $check_step is $accuracy, below $min_accuracy"
echo "PASS: accuracy at step $check_step is $accuracy (>= $min_accuracy)"

# Second run: the cache is valid, so nothing is downloaded (the server is gone too).
kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=
max_steps=11 run >/dev/null
! grep -q '^Successfully downloaded' "$work/out" || fail "cached files were downloaded again"
(( $(grep -c '^Extracting ' "$work/out") == 4 )) || fail "expected 4 Extracting lines from the cache"
echo "PASS: second run used the cache"
