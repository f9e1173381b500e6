#!/usr/bin/env bash
# summaries.sh TRAINER SERVER IDX_DIR BACKEND [READER_ARGS...]
# What a training run writes to --log_dir, read back by the independent reader
# (tests/summary/read_events.py --log_dir: every tag, step and value; histograms; images against
# the idx files; the flags text; traces; result.json). Real MNIST, gzipped and served on loopback.
#   1. a fresh run of 115 steps with a checkpoint, checked on its own;
#   2. resumed to 230 steps in the same --log_dir: a second event file per folder, the first ones
#      byte for byte unchanged, the steps continuing from 115 (a training iteration: the second
#      process starts with a training step, its first evaluation is 120);
#   3. --summary_every 1 (the sample's every-step summaries) with other --hidden_units,
#      --batch_size, --dropout and --learning_rate;
#   4. the softmax model with --eval_every 7 --summary_every 3;
#   5. a run stopped by SIGTERM after step 30, then resumed for 25 more steps;
#   6. on a GPU backend: runs 1, 3 and 4 again on the CPU reference, compared value by value
#      (read_events.py --compare_to: statistics and histograms within float tolerances, the same
#      images).
# Where Python has the tensorboard package (the GPU machine), each folder is also loaded with
# TensorBoard's own loaders (tests/summary/tensorboard_check.py). With SUMMARIES_TENSORBOARD=required
# (CTest's e2e_summaries_tensorboard sets it) those loaders are the point: without the package the
# script exits 77 at once, so CTest reports the check as skipped rather than passed.
# BACKEND cpu, cuda or cublas; the GPU ones exit 77 (skipped) without a GPU (gpu_present.sh). Extra
# arguments go to every read_events.py call (e.g. --kernels_per_step 4 on the GPU).
set -euo pipefail
# The trainer reads these; the test passes --mirror and must not depend on the caller's values.
unset MNIST_MIRROR MNIST_BAKED_DATA JOB_COMPLETION_INDEX
source "$(dirname "$0")/gpu_present.sh"
trainer=$1 server=$2 idx_dir=$3 backend=$4
shift 4
reader_args=("$@")
here=$(cd "$(dirname "$0")" && pwd)
reader=$here/../summary/read_events.py

[[ $backend == cpu ]] || require_gpu "$trainer" "$backend"
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  [[ -f $idx_dir/$f ]] || { echo "FAIL: $idx_dir/$f is missing: run scripts/fetch-test-data.sh"; exit 1; }
done

work=$(mktemp -d)
server_pid=
# SUMMARIES_KEEP=DIR: the log folders and outputs are kept there (for a look, e.g. on the GPU machine).
pid=
cleanup() {
  [[ -z $server_pid ]] || kill "$server_pid" 2>/dev/null || true
  [[ -z $pid ]] || kill "$pid" 2>/dev/null || true
  if [[ -n ${SUMMARIES_KEEP:-} ]]; then
    mkdir -p "$SUMMARIES_KEEP" && (cd "$work" && cp -a -- *.out *.err logs fresh_copy every* softmax* fresh_cpu stopped* resumed* "$SUMMARIES_KEEP"/ 2>/dev/null) || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/mirror"
for f in "$idx_dir"/*-ubyte; do gzip -1 -c "$f" >"$work/mirror/$(basename "$f").gz"; done
"$server" "$work/mirror" "$work/port" >/dev/null &
server_pid=$!
for _ in $(seq 600); do [[ -s $work/port ]] && break; sleep 0.05; done
[[ -s $work/port ]] || fail "the loopback server did not start"
mirror="http://127.0.0.1:$(cat "$work/port")/"

fail() { echo "FAIL: $*"; exit 1; }
# train_on BACKEND NAME ARGS...: runs the trainer into $work/NAME.out; fails on a non-zero exit.
train_on() {
  local on=$1 name=$2; shift 2
  local start rc=0
  start=$(date +%s%N)
  "$trainer" --backend "$on" --mirror "$mirror" --data_dir "$work/cache" --download_attempts 1 \
    "$@" >"$work/$name.out" 2>"$work/$name.err" || rc=$?
  echo "run $name: exit $rc, $(( ($(date +%s%N) - start) / 1000000 )) ms: mnist-train --backend $on $*"
  if (( rc != 0 )); then cat "$work/$name.err" "$work/$name.out" | tail -20; fail "$name: exit $rc"; fi
  grep -q '^Final test accuracy: ' "$work/$name.out" || fail "$name: no 'Final test accuracy' line"
}
train() { train_on "$backend" "$@"; }
# check NAME READER_ARGS...: the reader on a log folder; prints its table.
check() {
  local name=$1; shift
  echo "--- read_events.py $*"
  python3 "$reader" "$@" "${reader_args[@]}" || fail "$name: the log folder deviates from the spec (above)"
}
# tb_check NAME LOGDIR ARGS...: where Python has the tensorboard package (the GPU machine), the
# same folder through TensorBoard's own loaders (tests/summary/tensorboard_check.py).
have_tensorboard=$(python3 -c 'import tensorboard' >/dev/null 2>&1 && echo yes || echo no)
if [[ ${SUMMARIES_TENSORBOARD:-} == required && $have_tensorboard == no ]]; then
  echo "SKIP: no tensorboard package for $(command -v python3): TensorBoard's loaders not tried"; exit 77
fi
tb_check() {
  local name=$1; shift
  if [[ $have_tensorboard == no ]]; then echo "(no tensorboard package here: TensorBoard's loaders not tried)"; return; fi
  echo "--- tensorboard_check.py $*"
  python3 "$here/../summary/tensorboard_check.py" "$@" || fail "$name: TensorBoard's loaders disagree with the spec (above)"
}
# The validation split is evaluated at each process's first evaluation and then every
# --summary_every evaluations (i % (eval_every * summary_every) == 0), to keep the summaries cheap.
vevery() { echo "--validation_every $(( $1 * $2 ))"; }
event_files() { find "$1/train" "$1/test" "$1/validation" -name '*tfevents*' -type f | sort; }

# 1. A fresh run of 115 steps (defaults: --eval_every 10, --summary_every 10).
logs=$work/logs
train fresh --max_steps 115 --log_dir "$logs" --checkpoint_dir "$work/ckpt"
check fresh --log_dir "$logs" --max_steps 115 --idx_dir "$idx_dir" --stdout "$work/fresh.out" $(vevery 10 10)
tb_check fresh "$logs" --max_steps 115 $(vevery 10 10)
(( $(event_files "$logs" | wc -l) == 3 )) || fail "fresh: expected one event file in each of train, test, validation"
(cd / && event_files "$logs" | xargs sha256sum) >"$work/fresh.sha256"
[[ -f $logs/traces/step_99.trace.json ]] || fail "fresh: no traces/step_99.trace.json"
cp -a "$logs" "$work/fresh_copy"  # for the comparison with the CPU below
echo "PASS: a fresh run's log folder"

# 2. Resumed to 230 steps: new files beside the old ones, which stay as they were.
train resumed --max_steps 230 --log_dir "$logs" --checkpoint_dir "$work/ckpt"
grep -q '^Accuracy at step 0: ' "$work/resumed.out" && fail "resumed: started over at step 0"
sha256sum --quiet -c "$work/fresh.sha256" || fail "resumed: the first run's event files changed"
for folder in train test validation; do
  n=$(find "$logs/$folder" -name '*tfevents*' -type f | wc -l)
  (( n == 2 )) || fail "resumed: $n event files in $folder, expected 2 (one per process)"
done
check resumed --log_dir "$logs" --max_steps 230 --starts 0,115 --idx_dir "$idx_dir" \
  --stdout "$work/fresh.out" --stdout "$work/resumed.out" $(vevery 10 10)
tb_check resumed "$logs" --max_steps 230 --starts 0,115 $(vevery 10 10)
echo "PASS: a resumed run adds a file per folder, the first ones unchanged, steps from 115"

# 3. The sample's every-step summaries, with other sizes and rates.
every=(--max_steps 25 --summary_every 1 --hidden_units 64 --batch_size 50 --dropout 0.75 --learning_rate 0.0005)
train every "${every[@]}" --log_dir "$work/every"
check every --log_dir "$work/every" --max_steps 25 --summary_every 1 --hidden 64 --batch 50 \
  --dropout 0.75 --learning_rate 0.0005 --idx_dir "$idx_dir" --stdout "$work/every.out" $(vevery 10 1)
tb_check every "$work/every" --max_steps 25 --summary_every 1 --hidden 64 --batch 50 $(vevery 10 1)
echo "PASS: --summary_every 1"

# 4. The softmax model, another evaluation cadence.
train softmax --model softmax --max_steps 30 --eval_every 7 --summary_every 3 --log_dir "$work/softmax"
check softmax --log_dir "$work/softmax" --model softmax --max_steps 30 --eval_every 7 \
  --summary_every 3 --idx_dir "$idx_dir" --stdout "$work/softmax.out" $(vevery 7 3)
tb_check softmax "$work/softmax" --model softmax --max_steps 30 --eval_every 7 --summary_every 3 $(vevery 7 3)
echo "PASS: --model softmax --eval_every 7 --summary_every 3"

# 5. Stopped by SIGTERM mid-run (a pod evicted), then resumed: the stopped process's summaries
#    up to its last step are all there (buffered values flushed on the way out), and the resumed
#    process continues from the step it stopped at.
"$trainer" --backend "$backend" --mirror "$mirror" --data_dir "$work/cache" --max_steps 100000 \
  --log_dir "$work/stopped" --checkpoint_dir "$work/ckpt_stopped" >"$work/stopped.out" 2>"$work/stopped.err" &
pid=$!
for _ in $(seq 1200); do grep -q '^Accuracy at step 30: ' "$work/stopped.out" && break; sleep 0.05; done
kill -TERM "$pid"; rc=0; wait "$pid" || rc=$?
(( rc == 143 )) || fail "stopped: exit $rc after SIGTERM, expected 143"
stop=$(sed -n 's/.*stopped by SIGTERM at step \([0-9]*\).*/\1/p' "$work/stopped.err")
[[ -n $stop ]] || fail "stopped: no 'stopped by SIGTERM at step N' line: $(cat "$work/stopped.err")"
echo "run stopped: SIGTERM at step $stop"
train resumed_after_stop --max_steps $((stop + 25)) --log_dir "$work/stopped" --checkpoint_dir "$work/ckpt_stopped"
check stopped --log_dir "$work/stopped" --max_steps $((stop + 25)) --starts "0,$stop" --idx_dir "$idx_dir" \
  --stdout "$work/stopped.out" --stdout "$work/resumed_after_stop.out" $(vevery 10 10)
tb_check stopped "$work/stopped" --max_steps $((stop + 25)) --starts "0,$stop" $(vevery 10 10)
echo "PASS: stopped by SIGTERM at step $stop and resumed"

# 6. On a GPU: the same runs on the CPU reference give the same values within float tolerances (the
# statistics and histograms reduced on the device against the host's) and the same images.
if [[ $backend != cpu ]]; then
  train_on cpu fresh_cpu --max_steps 115 --log_dir "$work/fresh_cpu"
  check fresh_vs_cpu --log_dir "$work/fresh_copy" --max_steps 115 --idx_dir "$idx_dir" \
    --stdout "$work/fresh.out" --compare_to "$work/fresh_cpu" $(vevery 10 10)
  train_on cpu every_cpu "${every[@]}" --log_dir "$work/every_cpu"
  check every_vs_cpu --log_dir "$work/every" --max_steps 25 --summary_every 1 --hidden 64 --batch 50 \
    --dropout 0.75 --learning_rate 0.0005 --idx_dir "$idx_dir" --stdout "$work/every.out" \
    --compare_to "$work/every_cpu" $(vevery 10 1)
  train_on cpu softmax_cpu --model softmax --max_steps 30 --eval_every 7 --summary_every 3 --log_dir "$work/softmax_cpu"
  check softmax_vs_cpu --log_dir "$work/softmax" --model softmax --max_steps 30 --eval_every 7 \
    --summary_every 3 --idx_dir "$idx_dir" --stdout "$work/softmax.out" --compare_to "$work/softmax_cpu" \
    $(vevery 7 3)
  echo "PASS: $backend and cpu agree"
fi

