#!/usr/bin/env bash
# multi_process.sh TRAINER SERVER IDX_DIR
# Data-parallel training on real MNIST (served on loopback) three ways, on a machine with two or
# more GPUs (skip, 77, otherwise):
#   one      --gpus 1: the one-GPU run, the reference
#   pod      --gpus 2: one process driving two GPUs
#   world    --world_size 2: two processes (ranks from JOB_COMPLETION_INDEX, one GPU each through
#            CUDA_VISIBLE_DEVICES) meeting at a loopback rendezvous, as two pods of an Indexed Job
# Checks: every run exits 0 with 50 accuracy lines; both ranks print the same accuracy lines; the
# data-parallel runs' accuracy is within 0.01 of the one-GPU run's at every evaluation (float
# reassociation only: the same global batch, samples and dropout masks), and their final parameters
# agree on every GPU ("Parameters identical"); only rank 0 writes the log folder; a rank whose peer
# never comes exits 3 after its --rendezvous_timeout; a mismatched configuration exits 2.
set -euo pipefail
source "$(dirname "$0")/serve_mnist.sh"
trainer=$1 server=$2 idx_dir=$3

gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)
if (( gpus < 2 )); then echo "SKIP: needs 2 GPUs, $gpus visible"; exit 77; fi

work=$(mktemp -d)
server_pid=
pids=()
cleanup() {
  [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

serve_mnist "$server" "$idx_dir" "$work"
common=(--backend cuda --max_steps 500 --mirror "$mirror"
        --data_dir "$work/cache" --download_attempts 1)
"$trainer" "${common[@]}" --download_only >/dev/null  # one download, before the runs share it

"$trainer" "${common[@]}" --gpus 1 --log_dir "" >"$work/one" || fail "one-GPU run: exit $?"
"$trainer" "${common[@]}" --gpus 2 --log_dir "" >"$work/pod" || fail "two-GPU run: exit $?"
grep -q '^Data-parallel over 2 GPUs' "$work/pod" || fail "no data-parallel line: $(cat "$work/pod")"
grep -q '^Parameters identical on all 2 GPUs' "$work/pod" || fail "no parameter check (pod)"

# Three free loopback ports (asked of the kernel, then released: a tiny window for a collision).
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port) port_alone=$(free_port) port_mismatch=$(free_port)
world=(--world_size 2 --rendezvous "127.0.0.1:$port" --rendezvous_timeout 60 --gpus 1)
for rank in 0 1; do
  CUDA_VISIBLE_DEVICES=$rank JOB_COMPLETION_INDEX=$rank "$trainer" "${common[@]}" "${world[@]}" \
    --log_dir "$work/logs$rank" >"$work/rank$rank" 2>&1 &
  pids+=($!)
done
for rank in 0 1; do wait "${pids[$rank]}" || fail "rank $rank: exit $?: $(tail -3 "$work/rank$rank")"; done
pids=()
grep -q '^Parameters identical on all 2 GPUs' "$work/rank0" || fail "no parameter check (rank 0)"
[[ -f $work/logs0/result.json ]] || fail "rank 0 wrote no result.json"
[[ ! -e $work/logs1 ]] || fail "rank 1 wrote its log folder"
diff <(grep '^Accuracy at step' "$work/rank0") <(grep '^Accuracy at step' "$work/rank1") \
  || fail "the two ranks printed different accuracy lines"

compare() {  # compare NAME FILE: accuracy lines against the one-GPU run's
  local lines
  lines=$(grep -c '^Accuracy at step' "$2")
  (( lines == 50 )) || fail "$1: $lines accuracy lines"
  paste <(sed -n 's/^Accuracy at step [0-9]*: //p' "$work/one") \
        <(sed -n 's/^Accuracy at step [0-9]*: //p' "$2") |
    awk -v name="$1" '{ d = $1 - $2; if (d < 0) d = -d; if (d > max) max = d }
      END { printf "%s: largest accuracy difference from one GPU %.4f\n", name, max; exit !(max <= 0.01) }' \
    || fail "$1: accuracy differs from the one-GPU run by more than 0.01"
}
compare "one process, 2 GPUs" "$work/pod"
compare "two processes" "$work/rank0"
grep 'all-reduce' "$work/pod" "$work/rank0"

# A peer that never comes: rank 1 alone gives up after its timeout with exit 3.
set +e
CUDA_VISIBLE_DEVICES=1 JOB_COMPLETION_INDEX=1 "$trainer" "${common[@]}" --world_size 2 \
  --rendezvous "127.0.0.1:$port_alone" --rendezvous_timeout 3 --gpus 1 >"$work/alone" 2>&1
code=$?
set -e
(( code == 3 )) || fail "a rank whose peer never comes exited $code, not 3: $(tail -2 "$work/alone")"

# Mismatched configuration (another batch size): refused, exit 2 on both.
for rank in 0 1; do
  CUDA_VISIBLE_DEVICES=$rank JOB_COMPLETION_INDEX=$rank "$trainer" "${common[@]}" --world_size 2 \
    --rendezvous "127.0.0.1:$port_mismatch" --rendezvous_timeout 30 --gpus 1 \
    --batch_size $((100 + rank)) >"$work/mismatch$rank" 2>&1 &
  pids+=($!)
done
for rank in 0 1; do
  set +e; wait "${pids[$rank]}"; code=$?; set -e
  (( code == 2 )) || fail "mismatched rank $rank exited $code, not 2: $(tail -2 "$work/mismatch$rank")"
done
pids=()
echo "PASS: one process over 2 GPUs and 2 processes match the one-GPU run; timeouts exit 3, mismatches 2"
