#!/usr/bin/env bash
# precision.sh TRAINER SERVER IDX_DIR BACKEND MAX_STEPS CHECK_STEP
# Real MNIST (served on loopback), the seed settings, at --precision fp32, tf32 and bf16: the test
# accuracy at CHECK_STEP of tf32 and bf16 must be within 0.3 % (absolute) of fp32's (the issue's
# target). Skips (77) without a GPU (gpu_present.sh) or on one older than compute capability 8.0.
set -euo pipefail
# The trainer reads these; the test passes --mirror and must not depend on the caller's values.
unset MNIST_MIRROR MNIST_BAKED_DATA JOB_COMPLETION_INDEX
source "$(dirname "$0")/serve_mnist.sh"
source "$(dirname "$0")/gpu_present.sh"
trainer=$1 server=$2 idx_dir=$3 backend=$4 max_steps=$5 check_step=$6

require_gpu "$trainer" "$backend"
cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 || true)
[[ $cap =~ ^[0-9]+\.[0-9]+$ ]] || { echo "FAIL: a GPU is present, but nvidia-smi gives no compute capability ('$cap')"; exit 1; }
if (( ${cap%%.*} < 8 )); then echo "SKIP: needs a GPU of compute capability 8.0+ (this one: $cap)"; exit 77; fi

work=$(mktemp -d)
server_pid=
cleanup() { [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
serve_mnist "$server" "$idx_dir" "$work"
common=(--backend "$backend" --max_steps "$max_steps" --mirror "$mirror"
        --data_dir "$work/cache" --download_attempts 1 --log_dir "")
for p in fp32 tf32 bf16; do
  "$trainer" "${common[@]}" --precision $p >"$work/$p" || fail "--precision $p: exit $?"
  sed -n "s/^Accuracy at step $check_step: //p" "$work/$p" >"$work/$p.acc"
  [[ -s $work/$p.acc ]] || fail "--precision $p: no accuracy line for step $check_step"
done
reference=$(cat "$work/fp32.acc")
for p in tf32 bf16; do
  got=$(cat "$work/$p.acc")
  awk -v a="$got" -v r="$reference" 'BEGIN { d = a - r; if (d < 0) d = -d; exit !(d <= 0.003) }' \
    || fail "--precision $p: accuracy $got at step $check_step, fp32 $reference (more than 0.003 apart)"
  echo "PASS: $backend --precision $p: $got at step $check_step (fp32: $reference)"
done
