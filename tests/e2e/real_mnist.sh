#!/usr/bin/env bash
# real_mnist.sh TRAINER SERVER IDX_DIR BACKEND MAX_STEPS CHECK_STEP MIN_ACCURACY
# Gzips the real MNIST idx files, serves them on loopback, trains with the given backend and
# checks the accuracy lines; then runs again to check that the cached files are reused.
set -euo pipefail
# The trainer reads these; the test passes --mirror and must not depend on the caller's values.
unset MNIST_MIRROR MNIST_BAKED_DATA JOB_COMPLETION_INDEX
source "$(dirname "$0")/serve_mnist.sh"
source "$(dirname "$0")/gpu_present.sh"
trainer=$1 server=$2 idx_dir=$3 backend=$4 max_steps=$5 check_step=$6 min_accuracy=$7

[[ $backend == cpu ]] || require_gpu "$trainer" "$backend"
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
fail() { echo "FAIL: $*"; exit 1; }
start=$(date +%s.%N)
run || fail "mnist-train --backend $backend: exit $?"
echo "wall: $(echo "$(date +%s.%N) - $start" | bc) s"

lines=$(grep -c '^Accuracy at step ' "$work/out")
(( lines == max_steps / 10 )) || fail "expected $((max_steps / 10)) accuracy lines, got $lines"
(( $(grep -c '^Successfully downloaded ' "$work/out") == 4 )) || fail "expected 4 downloads"
accuracy=$(sed -n "s/^Accuracy at step $check_step: //p" "$work/out")
[[ -n $accuracy ]] || fail "no line for step $check_step"
awk -v a="$accuracy" -v m="$min_accuracy" 'BEGIN { exit !(a >= m) }' \
  || fail "accuracy at step $check_step is $accuracy, below $min_accuracy"
echo "PASS: accuracy at step $check_step is $accuracy (>= $min_accuracy)"

# A threshold at the end cannot catch an optimiser bug: Adam without its bias correction still
# passes it (0.96 at step 490). The early lines can: that correction scales the first steps
# (by 0.15 at step 10), and they move with it. So the accuracy lines at steps 0 to 100 are
# compared line by line with the CPU reference's.
# same_lines A B TOLERANCE WHAT: the first 11 accuracy lines of A and B, same steps, each value
# within TOLERANCE.
same_lines() {
  awk -v tol="$3" -v what="$4" '
    FNR == 1 { file++ }
    /^Accuracy at step / && n[file] < 11 { n[file]++; step[file, n[file]] = $4; v[file, n[file]] = $5 }
    END {
      if (n[1] != 11 || n[2] != 11) { printf "FAIL: %s: %d and %d lines, expected 11\n", what, n[1], n[2]; exit 1 }
      worst = 0
      for (i = 1; i <= 11; i++) {
        d = v[1, i] - v[2, i]; if (d < 0) d = -d
        if (step[1, i] != step[2, i]) { printf "FAIL: %s: step %s against %s\n", what, step[1, i], step[2, i]; exit 1 }
        if (d > worst) worst = d
        if (d > tol) bad = bad sprintf(" step %s %s vs %s;", step[1, i], v[1, i], v[2, i])
      }
      if (bad != "") { printf "FAIL: %s: more than %s apart at%s\n", what, tol, bad; exit 1 }
      printf "PASS: %s: steps 0 to 100 within %s (largest difference %.4f)\n", what, tol, worst
    }' "$1" "$2"
}
# The CPU reference is deterministic: its lines are pinned (recorded in golden/; within 0.002, 20
# of the 10,000 test images, for another compiler's or libm's last-bit differences).
golden=$(dirname "$0")/golden/cpu_accuracy_steps_0-100.txt
if [[ $backend == cpu ]]; then
  same_lines "$work/out" "$golden" 0.002 "the CPU reference against $golden" || exit 1
else
  # The GPU against the CPU reference on the same data with the same flags, within 0.003 (30 of
  # the 10,000 test images): float sums in another order change the parameters in their last bits,
  # which moves a few borderline predictions (on an H200, 0.0004 at most over seeds 1 to 5, both
  # GPU backends). Adam without its bias correction is 0.087 off at step 10.
  "$trainer" --backend cpu --max_steps 101 --mirror "$mirror" --data_dir "$work/cache" --log_dir "" \
    --download_attempts 1 >"$work/cpu_out"
  same_lines "$work/cpu_out" "$golden" 0.002 "the CPU reference against $golden" || exit 1
  same_lines "$work/out" "$work/cpu_out" 0.003 "$backend against the CPU reference" || exit 1
fi

# Second run: the cache is valid, so nothing is downloaded (the server is gone too).
kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=
max_steps=11 run >/dev/null || fail "the second run: exit $?"
! grep -q '^Successfully downloaded' "$work/out" || fail "cached files were downloaded again"
(( $(grep -c '^Extracting ' "$work/out") == 4 )) || fail "expected 4 Extracting lines from the cache"
echo "PASS: second run used the cache"
