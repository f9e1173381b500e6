#!/usr/bin/env bash
# exit_codes.sh TRAINER SERVER IDX_DIR: each documented exit code, produced by the failure it stands
# for; every verdict those runs write (result.json, --metrics_file) is valid (validate_verdict.py:
# the schema, promtool) and names the code.
set -uo pipefail
trainer=$1 server=$2 idx_dir=$3  # idx_dir: the raw MNIST idx files (scripts/fetch-test-data.sh)
here=$(cd "$(dirname "$0")" && pwd)
unset MNIST_MIRROR MNIST_BAKED_DATA NVIDIA_VISIBLE_DEVICES NODE_NAME  # the caller's data, GPUs, node play no part
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
verdict_codes=()  # the exit codes whose verdicts were checked

# check_verdicts CODE WHAT: the verdicts the last run left in $work/logs and $work/metrics are valid
# and say exit CODE; then they are removed, so that each run's are its own.
check_verdicts() {
  local files=()
  for f in "$work/logs/result.json" "$work/metrics/run.prom"; do [[ -e $f ]] && files+=("$f"); done
  ((${#files[@]})) || return 0
  if python3 "$here/../app/validate_verdict.py" "${files[@]}" &&
     { [[ ! -e $work/logs/result.json ]] || grep -Eq "\"exit_code\": $1," "$work/logs/result.json"; } &&
     { [[ ! -e $work/metrics/run.prom ]] || grep -Eq "^mnist_train_exit_code\{[^}]*\} $1\$" "$work/metrics/run.prom"; }; then
    verdict_codes+=("$1")
  else
    echo "FAIL $2: its verdict (${files[*]}) is invalid or does not say exit $1"; failures=$((failures + 1))
  fi
  rm -f "${files[@]}"
}
expect() {  # expect CODE DESCRIPTION -- ARGS...
  local want=$1 what=$2; shift 3
  "$@" >"$work/out" 2>"$work/err"
  local got=$?
  if [[ $got == "$want" ]]; then
    echo "ok   $want  $what: $(tail -n1 "$work/err")"
  else
    echo "FAIL $what: exit $got, expected $want"; cat "$work/out" "$work/err"; failures=$((failures + 1))
  fi
  check_verdicts "$got" "$what"
}
outputs=(--log_dir "$work/logs" --metrics_file "$work/metrics/run.prom")
fake=(--fake_data --backend cpu "${outputs[@]}")

expect 0 "trained" -- "$trainer" "${fake[@]}" --max_steps 21
grep -q '^Final test accuracy: ' "$work/out" || { echo "FAIL: no final accuracy line"; failures=$((failures + 1)); }
expect 0 "--help" -- "$trainer" --help
expect 2 "unknown flag" -- "$trainer" --no_such_flag
expect 2 "bad value" -- "$trainer" --max_steps many
expect 2 "batch larger than the training set" -- "$trainer" "${fake[@]}" --batch_size 20000
expect 2 "batch larger than MNIST's training set, found by --dry_run" -- "$trainer" --dry_run --batch_size 60000
expect 2 "benchmark batch larger than the training set" -- "$trainer" "${fake[@]}" --benchmark \
  --benchmark_batches 100,20000
grep -q -- '--benchmark_batches 20000 exceeds the 10000 training images' "$work/err" \
  || { echo "FAIL: benchmark batch message"; failures=$((failures + 1)); }
expect 3 "all mirrors fail" -- "$trainer" --backend cpu --data_dir "$work/data" --download_attempts 1 \
  --mirror "http://127.0.0.1:9/" --mirror "file://$work/nowhere/" "${outputs[@]}"
grep -q 'train-images-idx3-ubyte.gz: could not get a valid copy' "$work/err" || { echo "FAIL: message"; failures=$((failures + 1)); }

mkdir -p "$work/bad"
printf 'not gzip' >"$work/bad/train-images-idx3-ubyte.gz"
expect 7 "corrupt file on the mirror" -- "$trainer" --backend cpu --data_dir "$work/data2" --download_attempts 1 \
  --mirror "file://$work/bad/" "${outputs[@]}"
[[ ! -e $work/data2/train-images-idx3-ubyte.gz ]] || { echo "FAIL: corrupt file cached"; failures=$((failures + 1)); }

expect 4 "--backend cuda without a visible GPU" -- env CUDA_VISIBLE_DEVICES= "$trainer" --backend cuda --fake_data \
  "${outputs[@]}"
grep -q 'CUDA devices visible: 0' "$work/err" || { echo "FAIL: exit 4 message"; failures=$((failures + 1)); }
expect 0 "--backend auto without a GPU falls back with a warning" -- env CUDA_VISIBLE_DEVICES= "$trainer" --fake_data --backend auto --log_dir "$work/logs" --max_steps 2
grep -q 'warning: no CUDA GPU found' "$work/out" || { echo "FAIL: no fallback warning"; failures=$((failures + 1)); }
# NVIDIA_VISIBLE_DEVICES: a list of GPUs the device plugin gave this container makes a missing GPU
# a broken node; "all", which NVIDIA's CUDA images set in every container, does not.
expect 0 "--backend auto, NVIDIA_VISIBLE_DEVICES=all, no GPU: falls back" -- env CUDA_VISIBLE_DEVICES= \
  NVIDIA_VISIBLE_DEVICES=all "$trainer" --fake_data --backend auto --log_dir "$work/logs" --max_steps 2
grep -q 'warning: no CUDA GPU found' "$work/out" || { echo "FAIL: no fallback warning with NVIDIA_VISIBLE_DEVICES=all"; failures=$((failures + 1)); }
expect 4 "--backend auto, NVIDIA_VISIBLE_DEVICES=GPU-UUID, no GPU" -- env CUDA_VISIBLE_DEVICES= \
  NVIDIA_VISIBLE_DEVICES=GPU-8f6c1b2e-0000-4000-8000-000000000000 "$trainer" --fake_data --backend auto \
  "${outputs[@]}" --max_steps 2
grep -q 'this container was assigned a GPU' "$work/err" || { echo "FAIL: exit 4 names the assignment"; failures=$((failures + 1)); }
expect 5 "divergence" -- "$trainer" "${fake[@]}" --learning_rate 1e30 --max_steps 40

# signal_mid_training SIGNAL CODE: the signal mid-training saves a checkpoint, then exits CODE.
signal_mid_training() {
  rm -rf "$work/ckpt"
  "$trainer" "${fake[@]}" --max_steps 100000000 --checkpoint_dir "$work/ckpt" >"$work/out" 2>"$work/err" &
  local pid=$! got
  for _ in $(seq 200); do grep -q 'Accuracy at step 20:' "$work/out" && break; sleep 0.05; done
  kill -"$1" "$pid"; wait "$pid"; got=$?
  if [[ $got == "$2" && -s $work/ckpt/model.ckpt ]]; then echo "ok   $2 SIG$1: $(tail -n1 "$work/err")"
  else echo "FAIL SIG$1: exit $got"; cat "$work/err"; failures=$((failures + 1)); fi
  check_verdicts "$got" "SIG$1"
}

# 143: SIGTERM; a rerun resumes from the checkpoint it saved.
signal_mid_training TERM 143
step=$(grep -o 'stopped by SIGTERM at step [0-9]*' "$work/err" | grep -o '[0-9]*$')
expect 0 "resume after SIGTERM" -- "$trainer" "${fake[@]}" --max_steps $((step + 20)) --checkpoint_dir "$work/ckpt"
grep -q "Resuming from .* at step $step" "$work/out" || { echo "FAIL: did not resume"; failures=$((failures + 1)); }

# 130: SIGINT (Ctrl-C) likewise saves a checkpoint first.
signal_mid_training INT 130

# 2: a second run on the same checkpoint folder while the first one trains.
"$trainer" "${fake[@]}" --max_steps 100000000 --checkpoint_dir "$work/ckpt2" >"$work/out1" 2>&1 &
pid=$!
for _ in $(seq 200); do grep -q 'Accuracy at step 10:' "$work/out1" && break; sleep 0.05; done
expect 2 "a checkpoint folder in use by another run" -- "$trainer" "${fake[@]}" --max_steps 20 --checkpoint_dir "$work/ckpt2"
kill -TERM "$pid"; wait "$pid"
check_verdicts 143 "the first run, stopped"

# 7: every checkpoint damaged is an error, never a silent fresh start.
printf 'garbage' >"$work/ckpt2/model.ckpt"; printf 'garbage' >"$work/ckpt2/model.ckpt.1"
expect 7 "only damaged checkpoints" -- "$trainer" "${fake[@]}" --max_steps 20 --checkpoint_dir "$work/ckpt2"

# One folder for the data and the checkpoints: their locks are separate (no self-deadlock).
mkdir -p "$work/mirror"
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  gzip -c "$idx_dir/$f" >"$work/mirror/$f.gz"
done
expect 0 "--data_dir and --checkpoint_dir in one folder" -- timeout 120 "$trainer" --backend cpu --log_dir "" \
  --data_dir "$work/same" --checkpoint_dir "$work/same" --max_steps 11 --mirror "file://$PWD/nowhere/" \
  --mirror "file://$work/mirror/"

# 6: outputs that cannot be written, found before training.
: >"$work/a_file"
expect 6 "--log_dir under a file" -- "$trainer" --fake_data --backend cpu --log_dir "$work/a_file/logs" --max_steps 20
expect 6 "--checkpoint_dir under a file" -- "$trainer" "${fake[@]}" --max_steps 20 --checkpoint_dir "$work/a_file/ckpt"
start=$SECONDS
expect 6 "--benchmark_out naming a folder" -- "$trainer" "${fake[@]}" --benchmark --benchmark_out "$work"
(( SECONDS - start < 20 )) || { echo "FAIL: --benchmark_out checked only after the benchmark"; failures=$((failures + 1)); }
# A closed pipe on stdout is a failed write too (SIGPIPE ignored, EPIPE reported).
( "$trainer" "${fake[@]}" --max_steps 200 2>"$work/err"; echo $? >"$work/rc" ) | head -c 1 >/dev/null
got=$(cat "$work/rc")
[[ $got == 6 ]] && echo "ok   6   stdout closed: $(tail -n1 "$work/err")" \
  || { echo "FAIL stdout closed: exit $got"; cat "$work/err"; failures=$((failures + 1)); }
check_verdicts "$got" "stdout closed"
# A FIFO on a local mirror is never read (it would block past any timeout).
mkdir -p "$work/fifo_mirror" && mkfifo "$work/fifo_mirror/train-images-idx3-ubyte.gz"
expect 7 "a FIFO on a file:// mirror" -- timeout 60 "$trainer" --backend cpu --data_dir "$work/data3" \
  --download_attempts 1 --mirror "file://$work/fifo_mirror/" "${outputs[@]}"
if [[ -w /dev/full ]]; then
  "$trainer" "${fake[@]}" --max_steps 20 >/dev/full 2>"$work/err"; got=$?
  [[ $got == 6 ]] && echo "ok   6   stdout on a full disk: $(tail -n1 "$work/err")" \
    || { echo "FAIL stdout on /dev/full: exit $got"; cat "$work/err"; failures=$((failures + 1)); }
  check_verdicts "$got" "stdout on /dev/full"
fi

# Every code a verdict stands for was seen in a valid one.
for code in 0 2 3 4 5 6 7 130 143; do
  [[ " ${verdict_codes[*]} " == *" $code "* ]] || { echo "FAIL: no valid verdict checked for exit $code"; failures=$((failures + 1)); }
done
echo "checked ${#verdict_codes[@]} verdicts: exit ${verdict_codes[*]}"

(( failures == 0 )) && echo "all exit codes as documented"
exit $(( failures > 0 ))
