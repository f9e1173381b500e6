#!/usr/bin/env bash
# job_contract.sh TRAINER MANIFEST: what k8s/job.yaml promises is what the binary does.
#   - the Job's args are accepted (--dry_run) and, on a node without a usable GPU, fail with 4
#     rather than training on the CPU and passing;
#   - every exit code its podFailurePolicy names is the code the program returns for that failure.
set -uo pipefail
trainer=$1 manifest=$2
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL $*"; failures=$((failures + 1)); }

contract=$(node "$here/validate_k8s.mjs" --contract "$manifest") || { echo "FAIL cannot read $manifest"; exit 1; }
mapfile -t job_args < <(grep -v '^codes:' <<<"$contract")
codes=$(sed -n 's/^codes: //p' <<<"$contract")
echo "Job args: ${job_args[*]}; podFailurePolicy exit codes: $codes"

"$trainer" "${job_args[@]}" --dry_run >"$work/out" 2>&1 && echo "ok   the Job's args are accepted: $(cat "$work/out")" \
  || fail "the Job's args are rejected: $(cat "$work/out")"
env CUDA_VISIBLE_DEVICES= NVIDIA_VISIBLE_DEVICES=GPU-0 "$trainer" "${job_args[@]}" --fake_data --log_dir "" \
  >"$work/out" 2>&1
got=$?
[[ $got == 4 ]] && echo "ok   4   the Job's args without a usable GPU: $(tail -n1 "$work/out")" \
  || fail "the Job's args without a GPU exited $got, not 4"

# A signal mid-training: the run saves a checkpoint and exits 128 + the signal's number.
interrupt() {
  rm -rf "$work/ckpt"
  "$trainer" --backend cpu --fake_data --log_dir "" --max_steps 100000000 --checkpoint_dir "$work/ckpt" &
  local pid=$!
  for _ in $(seq 100); do grep -q '^Accuracy at step 10:' "$work/out" && break; sleep 0.05; done
  kill -"$1" "$pid"
  wait "$pid"
  local rc=$?
  [[ -s $work/ckpt/model.ckpt ]] || { echo "no checkpoint after SIG$1"; return 99; }
  return $rc
}

# One real failure per code the policy names.
produce() {
  case $1 in
    2) "$trainer" "${job_args[@]}" --no_such_flag ;;
    3) "$trainer" --backend cpu --data_dir "$work/data" --download_attempts 1 --mirror "http://127.0.0.1:9/" ;;
    4) env CUDA_VISIBLE_DEVICES= "$trainer" --backend cuda --fake_data ;;
    5) "$trainer" --backend cpu --fake_data --log_dir "" --learning_rate 1e30 --max_steps 40 ;;
    6) : >"$work/a_file"; "$trainer" --backend cpu --fake_data --log_dir "$work/a_file/logs" --max_steps 20 ;;
    7) mkdir -p "$work/corrupt"; printf 'not gzip' >"$work/corrupt/train-images-idx3-ubyte.gz"
       "$trainer" --backend cpu --data_dir "$work/data7" --download_attempts 1 --mirror "file://$work/corrupt/" ;;
    130) interrupt INT ;;
    143) interrupt TERM ;;
    *) echo "no scenario for exit code $1"; return 254 ;;
  esac
}
for code in $codes; do
  produce "$code" >"$work/out" 2>&1
  got=$?
  [[ $got == "$code" ]] && echo "ok   $code $(grep 'error' "$work/out" | tail -n1)" \
    || { fail "podFailurePolicy names $code, the scenario for it exited $got"; cat "$work/out"; }
done
(( failures == 0 )) && echo "job contract holds"
exit $(( failures > 0 ))
