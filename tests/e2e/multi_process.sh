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
# never comes exits 3 after its --rendezvous_timeout; a mismatched configuration (another batch
# size, another --precision) exits 2 on both ranks, as do two ranks on one GPU (named by its PCI
# bus id), before NCCL sees them; a rank with another --rendezvous_secret_file never joins.
set -euo pipefail
unset MNIST_MIRROR MNIST_BAKED_DATA JOB_COMPLETION_INDEX  # independent of the caller's environment
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
port_precision=$(free_port) port_gpu=$(free_port) port_secret=$(free_port)
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/secret"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/other-secret"
secret=(--rendezvous_secret_file "$work/secret")
world=(--world_size 2 --rendezvous "127.0.0.1:$port" --rendezvous_timeout 60 --gpus 1 "${secret[@]}")
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
  --rendezvous "127.0.0.1:$port_alone" --rendezvous_timeout 3 --gpus 1 "${secret[@]}" >"$work/alone" 2>&1
code=$?
set -e
(( code == 3 )) || fail "a rank whose peer never comes exited $code, not 3: $(tail -2 "$work/alone")"

# Mismatched configuration (another batch size): refused, exit 2 on both.
for rank in 0 1; do
  CUDA_VISIBLE_DEVICES=$rank JOB_COMPLETION_INDEX=$rank "$trainer" "${common[@]}" --world_size 2 \
    --rendezvous "127.0.0.1:$port_mismatch" --rendezvous_timeout 30 --gpus 1 "${secret[@]}" \
    --batch_size $((100 + rank)) >"$work/mismatch$rank" 2>&1 &
  pids+=($!)
done
for rank in 0 1; do
  set +e; wait "${pids[$rank]}"; code=$?; set -e
  (( code == 2 )) || fail "mismatched rank $rank exited $code, not 2: $(tail -2 "$work/mismatch$rank")"
done
pids=()

# both_exit NAME CODE TEXT PORT ARGS0 -- ARGS1: ranks 0 and 1 (each on CUDA_VISIBLE_DEVICES from
# its args) both exit CODE, rank 0's log holding TEXT.
both_exit() {
  local name=$1 want=$2 text=$3 port=$4 rank code
  shift 4
  local -a args0=() args1=()
  while [[ $1 != -- ]]; do args0+=("$1"); shift; done
  shift
  args1=("$@")
  env "${args0[0]}" JOB_COMPLETION_INDEX=0 "$trainer" "${common[@]}" --world_size 2 \
    --rendezvous "127.0.0.1:$port" --rendezvous_timeout 30 --gpus 1 "${args0[@]:1}" >"$work/${name}0" 2>&1 &
  pids+=($!)
  env "${args1[0]}" JOB_COMPLETION_INDEX=1 "$trainer" "${common[@]}" --world_size 2 \
    --rendezvous "127.0.0.1:$port" --rendezvous_timeout 30 --gpus 1 "${args1[@]:1}" >"$work/${name}1" 2>&1 &
  pids+=($!)
  for rank in 0 1; do
    set +e; wait "${pids[$rank]}"; code=$?; set -e
    (( code == want )) || fail "$name: rank $rank exited $code, not $want: $(tail -2 "$work/$name$rank")"
  done
  pids=()
  grep -qF -- "$text" "$work/${name}0" || fail "$name: rank 0 does not say '$text': $(tail -2 "$work/${name}0")"
}
# fp32 and bf16 ranks would average gradients of different arithmetic.
both_exit precision 2 "precision=fp32" "$port_precision" CUDA_VISIBLE_DEVICES=0 "${secret[@]}" \
  -- CUDA_VISIBLE_DEVICES=1 "${secret[@]}" --precision bf16
# Two ranks on one GPU: a configuration error naming the GPU, not NCCL's internal error.
both_exit gpu 2 "both use the GPU PCI" "$port_gpu" CUDA_VISIBLE_DEVICES=0 "${secret[@]}" \
  -- CUDA_VISIBLE_DEVICES=0 "${secret[@]}"
# Another secret: rank 0 drops rank 1's hello (rank 1 exits 3 at once), then times out (3).
both_exit secret 3 "fails authentication" "$port_secret" CUDA_VISIBLE_DEVICES=0 "${secret[@]}" \
  -- CUDA_VISIBLE_DEVICES=1 --rendezvous_secret_file "$work/other-secret"
echo "PASS: one process over 2 GPUs and 2 processes match the one-GPU run; timeouts and strangers exit 3, mismatches 2"
