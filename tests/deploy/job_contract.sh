#!/usr/bin/env bash
# job_contract.sh TRAINER MANIFEST [REFERENCE]: what each Job in MANIFEST promises is what the
# binary does.
# MANIFEST is a YAML file (k8s/job.yaml) or a kustomization folder (k8s/overlays/...), rendered
# as `kubectl apply -k` would. Each Job's container args are taken as its pod would run them
# (job_spec.mjs: $(VAR)s from the downward API expanded, defaults of the output paths made
# explicit, every volume mapped to a folder here), and:
#   - they are accepted (--dry_run), and every output path is on a writable volume;
#   - on a node without a usable GPU they fail with 4 rather than train on the CPU and pass;
#   - with --checkpoint_dir (the persistent variants): a run stopped by SIGTERM exits 143 with a
#     checkpoint, a second run of the same Job (a retried pod: same uid, same claim) resumes from
#     it and appends to the same logs, and a new Job (another uid) starts afresh in its own folders;
#   - the verdict: the trainer writes its one-line verdict where Kubernetes reads the termination
#     message (terminationMessagePath), and every run below leaves it there (a file the test
#     creates, as the kubelet does) and result.json in its --log_dir, both naming its exit code;
#   - with --benchmark_out: the JSON lands on its volume (the CPU benchmark takes a minute: when
#     REFERENCE, another manifest or kustomization, has the same Job with the same args, this one
#     is left to REFERENCE's contract);
#   - every exit code its podFailurePolicy names is the code the program returns for that failure;
#   - an Indexed Job (the multi-node variant: one pod per rank, the rank in JOB_COMPLETION_INDEX,
#     which its pods get and no other pod does): every pod 0..completions-1 is accepted as the rank
#     of its index in a world of `completions`; a pod without JOB_COMPLETION_INDEX, or with
#     completions as its index, is refused with 2; a rank other than 0 without a GPU fails with 4,
#     its verdict in the termination message, and writes nothing to --log_dir (rank 0's); its
#     Secret (--rendezvous_secret_file) written where its volume is mounted, every pod is
#     accepted, and without it every pod is refused with 2 naming the flag.
# The runs use --backend cpu --fake_data where the Job asks for a GPU and the network.
set -uo pipefail
trainer=$1 manifest=$2 reference=${3:-} reference_name=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL $*"; failures=$((failures + 1)); }

rendered=$manifest
if [[ -d $manifest ]]; then
  rendered=$work/rendered.yaml
  bash "$here/render.sh" "$manifest" "$rendered" || exit $?
fi
if [[ -d $reference ]]; then
  bash "$here/render.sh" "$reference" "$work/reference.yaml" || exit $?
  reference=$work/reference.yaml
fi
mapfile -t jobs < <(node "$here/job_spec.mjs" "$rendered" --list) || true
((${#jobs[@]})) || { echo "FAIL no Job in $manifest"; exit 1; }

# spec JOB ROOT UID [--index I]: job_spec.mjs's description of JOB with its volumes under ROOT, as a
# Job of uid UID (and, for an Indexed Job, its pod I).
# The Secret the Job's pods mount (--rendezvous_secret_file) is written there, the same for every
# pod, as the operator creates it once (docs/KUBERNETES.md: kubectl create secret generic ...).
secret_value=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
spec() {
  local out file
  out=$(node "$here/job_spec.mjs" "$rendered" --job "$1" --trainer "$trainer" --root "$2" --uid "$3" "${@:4}") || return
  while IFS= read -r file; do
    mkdir -p "$(dirname "$file")" && printf '%s\n' "$secret_value" >"$file"
  done < <(sed -n 's/^secret\t//p' <<<"$out")
  printf '%s\n' "$out"
}
field() { sed -n "s/^$1\t//p" <<<"$2"; }
# path_of SPEC FLAG: where FLAG's output goes (mapped), empty when the Job has none.
path_of() { awk -F'\t' -v f="$2" '$1 == "path" && $2 == f { print $3 }' <<<"$1"; }
# set_flag ARRAY FLAG [VALUE]: gives --FLAG the value VALUE (replacing the Job's, or appended);
# without VALUE, adds the switch --FLAG if absent.
set_flag() {
  local -n a=$1
  local flag=$2 i
  if (($# == 2)); then
    for i in "${a[@]}"; do [[ $i == "--$flag" ]] && return; done
    a+=("--$flag")
    return
  fi
  for i in "${!a[@]}"; do
    if [[ ${a[i]} == "--$flag" ]]; then a[i+1]=$3; return; fi
    if [[ ${a[i]} == "--$flag="* ]]; then a[i]="--$flag=$3"; return; fi
  done
  a+=("--$flag" "$3")
}
# as_pod RANK CMD...: CMD in the environment the Job controller gives pod RANK: JOB_COMPLETION_INDEX
# for an Indexed Job (the current Job's completions is set), none otherwise (not even this
# machine's, should CI itself run in an Indexed Job).
as_pod() {
  local rank=$1
  shift
  if [[ -n ${completions:-} ]]; then env JOB_COMPLETION_INDEX="$rank" "$@"; else env -u JOB_COMPLETION_INDEX "$@"; fi
}
# cpu_args SPEC: the Job's args for this GPU-less machine: the CPU backend, synthetic data, one
# process (the CPU backend trains alone).
cpu_args() {
  mapfile -t cpu < <(field arg "$1")
  grep -q $'^arg\t--world_size' <<<"$1" && set_flag cpu world_size 1
  set_flag cpu backend cpu
  set_flag cpu fake_data
  set_flag cpu termination_log "$work/termination-log"
  : >"$work/termination-log"
}
# verdict WHAT RC RESULT_JSON: the run's verdict line (the termination message) and RESULT_JSON
# (log_dir/result.json, or --result_file) both name exit code RC.
verdict() {
  local what=$1 rc=$2 result=$3 line
  line=$(cat "$work/termination-log" 2>/dev/null)
  if [[ $(wc -l <<<"$line") == 1 && -n $line && ( ($rc == 0 && $line == *" passed"*) || $line == *"(exit $rc"* ) ]]; then
    echo "ok   $what: termination message: ${line:0:110}"
  else
    fail "$what: exited $rc, termination message: ${line:-(empty)}"
  fi
  [[ -z $result ]] && return
  if grep -Eq "\"exit_code\": *$rc([^0-9]|$)" "$result" 2>/dev/null; then
    echo "ok   $what: ${result#"$work"/*/} says exit_code $rc"
  else
    fail "$what: no $result with exit_code $rc"
  fi
}
# wait_for FILE PATTERN: up to 120 s (a sanitizer build on a busy machine) for PATTERN in FILE.
wait_for() {
  local _
  for _ in $(seq 1200); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  return 1
}
files_in() { find "$1" -type f 2>/dev/null | wc -l; }
bytes_in() { du -sb "$1" 2>/dev/null | cut -f1; }

# A signal mid-training: the run saves a checkpoint and exits 128 + the signal's number.
interrupt() {
  rm -rf "$work/ckpt"
  "$trainer" --backend cpu --fake_data --log_dir "" --termination_log "" --max_steps 100000000 --checkpoint_dir "$work/ckpt" &
  local pid=$!
  wait_for "$work/out" '^Accuracy at step 10:'
  kill -"$1" "$pid"
  wait "$pid"
  local rc=$?
  [[ -s $work/ckpt/model.ckpt ]] || { echo "no checkpoint after SIG$1"; return 99; }
  return $rc
}

# One real failure per code the policy names (2 with the Job's own args). No run writes a verdict
# outside $work: no default --log_dir, no termination log (a CI inside a pod has one).
produce() {
  local quiet=(--log_dir "" --termination_log "")
  case $1 in
    2) "$trainer" "${job_args[@]}" --no_such_flag ;;
    3) "$trainer" "${quiet[@]}" --backend cpu --data_dir "$work/data" --download_attempts 1 --mirror "http://127.0.0.1:9/" ;;
    4) env CUDA_VISIBLE_DEVICES= "$trainer" "${quiet[@]}" --backend cuda --fake_data ;;
    5) "$trainer" "${quiet[@]}" --backend cpu --fake_data --learning_rate 1e30 --max_steps 40 ;;
    6) : >"$work/a_file"
       "$trainer" --termination_log "" --backend cpu --fake_data --log_dir "$work/a_file/logs" --max_steps 20 ;;
    7) mkdir -p "$work/corrupt"; printf 'not gzip' >"$work/corrupt/train-images-idx3-ubyte.gz"
       "$trainer" "${quiet[@]}" --backend cpu --data_dir "$work/data7" --download_attempts 1 --mirror "file://$work/corrupt/" ;;
    130) interrupt INT ;;
    143) interrupt TERM ;;
    *) echo "no scenario for exit code $1"; return 254 ;;
  esac
}

# The persistent variant: a retried pod resumes, a new Job does not.
resume_contract() {
  local job=$1 s1 s2 ckpt logs rc step
  s1=$(spec "$job" "$work/claim" job-uid-1) || { fail "$job: job_spec"; return; }
  ckpt=$(path_of "$s1" checkpoint_dir) logs=$(path_of "$s1" log_dir)
  cpu_args "$s1"
  set_flag cpu max_steps 100000000
  "$trainer" "${cpu[@]}" >"$work/run1" 2>&1 &
  local pid=$!
  pids+=("$pid")
  wait_for "$work/run1" '^Accuracy at step 20:' || fail "$job: no accuracy line from the first pod: $(tail -n3 "$work/run1")"
  kill -TERM "$pid"
  wait "$pid"
  rc=$?
  step=$(sed -n 's/.*stopped by SIGTERM at step \([0-9]*\).*/\1/p' "$work/run1")
  if [[ $rc == 143 && -s $ckpt/model.ckpt && -n $step ]]; then
    echo "ok   first pod, SIGTERM at step $step: exit 143, checkpoint $(basename "$ckpt")/model.ckpt on the claim"
    verdict "first pod" 143 "$logs/result.json"
  else
    fail "$job: the first pod, SIGTERM'd, exited $rc (want 143) with ${ckpt}/model.ckpt $( [[ -s $ckpt/model.ckpt ]] && echo present || echo missing): $(tail -n2 "$work/run1")"
    return
  fi
  # The test summaries (accuracy): the retried pod must add to the first pod's folder.
  local files1 bytes1
  files1=$(files_in "$logs/test") bytes1=$(bytes_in "$logs/test")
  ((files1 > 0)) || fail "$job: the first pod left no test summaries in --log_dir $logs"

  # The retried pod: same Job (uid), same claim, the Job's own max_steps moved past the checkpoint.
  cpu_args "$s1"
  set_flag cpu max_steps $((step + 40))
  "$trainer" "${cpu[@]}" >"$work/run2" 2>&1
  rc=$?
  if [[ $rc == 0 ]] && grep -qF "Resuming from $ckpt/model.ckpt at step $step" "$work/run2"; then
    echo "ok   retried pod (same Job): $(grep -F 'Resuming from' "$work/run2" | sed "s|$work/||"); exit 0"
    verdict "retried pod" 0 "$logs/result.json"
  else
    fail "$job: the retried pod exited $rc and did not resume from step $step: $(head -n4 "$work/run2")"
  fi
  local files2 bytes2
  files2=$(files_in "$logs/test") bytes2=$(bytes_in "$logs/test")
  if ((files2 > files1 || bytes2 > bytes1)); then
    echo "ok   the retried pod's summaries went to the same --log_dir (test/: $files1 -> $files2 files, $bytes1 -> $bytes2 bytes)"
  else
    fail "$job: the retried pod added no test summaries to --log_dir $logs"
  fi

  # A new Job object (after kubectl delete job + apply): a new uid, its own folders, from scratch.
  s2=$(spec "$job" "$work/claim" job-uid-2) || { fail "$job: job_spec"; return; }
  [[ $(path_of "$s2" checkpoint_dir) != "$ckpt" && $(path_of "$s2" log_dir) != "$logs" ]] \
    || fail "$job: two Jobs share --checkpoint_dir/--log_dir (a new Job would resume a finished run instead of training)"
  cpu_args "$s2"
  set_flag cpu max_steps 30
  "$trainer" "${cpu[@]}" >"$work/run3" 2>&1
  rc=$?
  if [[ $rc == 0 ]] && ! grep -q 'Resuming from' "$work/run3" && [[ -s $(path_of "$s2" checkpoint_dir)/model.ckpt ]]; then
    echo "ok   a new Job trains from scratch in its own folders on the same claim"
  else
    fail "$job: a new Job exited $rc, or resumed another Job's checkpoint: $(head -n4 "$work/run3")"
  fi
}

benchmark_contract() {
  local job=$1 s json rc
  s=$(spec "$job" "$work/bench" job-uid-1) || { fail "$job: job_spec"; return; }
  json=$(path_of "$s" benchmark_out)
  if [[ -n $reference ]] && node "$here/job_spec.mjs" "$reference" --job "$job" --trainer "$trainer" --root "$work/bench" \
       --uid job-uid-1 2>/dev/null | grep '^arg' | cmp -s - <(grep '^arg' <<<"$s"); then
    echo "ok   --benchmark_out: the same args as in $reference_name, whose contract runs the benchmark"
    return
  fi
  cpu_args "$s"
  set_flag cpu benchmark_batches 20
  set_flag cpu benchmark_steps 2
  "$trainer" "${cpu[@]}" >"$work/bench.out" 2>&1
  rc=$?
  if [[ $rc == 0 ]] && node -e 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))' "$json" 2>/dev/null; then
    echo "ok   --benchmark_out: the JSON is on its volume (${json#"$work"/bench/})"
    verdict "benchmark" 0 "$(path_of "$s" result_file)"
  else
    fail "$job: the benchmark exited $rc, JSON at $json $( [[ -f $json ]] && echo unreadable || echo missing): $(tail -n2 "$work/bench.out")"
  fi
}

# An Indexed Job of N pods: pod i is rank i of N, and only a pod of this Job can be one.
multinode_contract() {
  local job=$1 n=$2 i rc s1 logs line
  echo "Indexed Job: $n pods (completions), JOB_COMPLETION_INDEX 0..$((n - 1))"
  if ! [[ $n =~ ^[0-9]+$ ]] || ((n < 2)); then
    fail "$job: an Indexed Job of this trainer needs completions above 1 (is '${n}')"
    return
  fi
  for ((i = 0; i < n; i++)); do
    JOB_COMPLETION_INDEX=$i "$trainer" "${job_args[@]}" --dry_run >"$work/out" 2>&1
    rc=$?
    if [[ $rc == 0 ]] && grep -qF "world_size $n (this process: rank $i)" "$work/out"; then
      echo "ok   pod $i: rank $i of $n: $(grep -o 'world_size.*' "$work/out")"
    else
      fail "$job: pod $i (JOB_COMPLETION_INDEX=$i) exited $rc, want 0 as rank $i of world_size $n: $(cat "$work/out")"
    fi
  done
  for i in unset "$n"; do
    if [[ $i == unset ]]; then env -u JOB_COMPLETION_INDEX "$trainer" "${job_args[@]}" --dry_run >"$work/out" 2>&1
    else JOB_COMPLETION_INDEX=$i "$trainer" "${job_args[@]}" --dry_run >"$work/out" 2>&1; fi
    rc=$?
    line=$(grep 'error:' "$work/out" | tail -n1)
    if [[ $rc == 2 && $line == *JOB_COMPLETION_INDEX* ]]; then
      echo "ok   2   a pod with JOB_COMPLETION_INDEX $i: ${line#*error: }"
    else
      fail "$job: a pod with JOB_COMPLETION_INDEX $i exited $rc, want 2 naming JOB_COMPLETION_INDEX: $(tail -n2 "$work/out")"
    fi
  done
  # The Secret missing (its volume optional, so empty): every pod exits 2 at once, naming the flag.
  local secret
  secret=$(field secret "$s")
  if [[ -n $secret ]]; then
    mv "$secret" "$secret.away"
    JOB_COMPLETION_INDEX=0 "$trainer" "${job_args[@]}" --dry_run >"$work/out" 2>&1
    rc=$?
    mv "$secret.away" "$secret"
    line=$(grep 'error:' "$work/out" | tail -n1)
    if [[ $rc == 2 && $line == *--rendezvous_secret_file* ]]; then
      echo "ok   2   the Job without its Secret: ${line#*error: }"
    else
      fail "$job: the Job without its Secret exited $rc, want 2 naming --rendezvous_secret_file: $(tail -n2 "$work/out")"
    fi
  fi
  # The last rank on a node without a usable GPU: its own verdict, nothing in the log_dir.
  s1=$(spec "$job" "$work/rank" job-uid-1 --index $((n - 1))) || { fail "$job: job_spec"; return; }
  mapfile -t rank_args < <(field arg "$s1")
  logs=$(path_of "$s1" log_dir)
  : >"$work/termination-log"
  env JOB_COMPLETION_INDEX=$((n - 1)) CUDA_VISIBLE_DEVICES= NVIDIA_VISIBLE_DEVICES=GPU-0 "$trainer" "${rank_args[@]}" \
    --fake_data --termination_log "$work/termination-log" >"$work/out" 2>&1
  rc=$?
  if [[ $rc == 4 ]]; then
    echo "ok   4   rank $((n - 1)) without a usable GPU: $(tail -n1 "$work/out" | cut -c1-110)"
    verdict "rank $((n - 1)), no GPU" 4 ""
  else
    fail "$job: rank $((n - 1)) without a GPU exited $rc, not 4: $(tail -n2 "$work/out")"
  fi
  if [[ -z $logs ]]; then
    echo "ok   no --log_dir"
  elif [[ $(files_in "$logs") == 0 ]]; then
    echo "ok   rank $((n - 1)) wrote nothing to --log_dir (only rank 0 writes summaries, checkpoints, result.json)"
  else
    fail "$job: rank $((n - 1)) wrote to --log_dir, which is rank 0's: $(find "$logs" -type f | sed "s|$work/||" | head -n3)"
  fi
}

for job in "${jobs[@]}"; do
  echo "== Job $job"
  s=$(spec "$job" "$work/pod" job-uid-1) || { fail "$job: job_spec.mjs failed"; continue; }
  mapfile -t job_args < <(field arg "$s")
  codes=$(field codes "$s") gpus=$(field gpus "$s")
  completions=""  # an Indexed Job's pod count
  if grep -q $'^indexed\t' <<<"$s"; then completions=$(field indexed "$s"); completions=${completions:-unset}; fi
  echo "args (volumes under ./): ${job_args[*]//"$work"\/pod\//./}; podFailurePolicy exit codes: $codes"
  while IFS= read -r p; do [[ -n $p ]] && fail "$job: $p"; done < <(field problem "$s")

  as_pod 0 "$trainer" "${job_args[@]}" --dry_run >"$work/out" 2>&1 && echo "ok   the Job's args are accepted: $(cat "$work/out")" \
    || fail "$job: the Job's args are rejected${completions:+ (as pod 0)}: $(cat "$work/out")"
  IFS=$'\t' read -r written read_from policy < <(field termination "$s")
  if [[ -n $written && $written == "$read_from" && $policy == FallbackToLogsOnError ]]; then
    echo "ok   the verdict line goes to $written, where Kubernetes reads the termination message (policy $policy)"
  else
    fail "$job: the trainer writes its verdict to '${written}', Kubernetes reads '$read_from' (policy $policy, want FallbackToLogsOnError)"
  fi
  if ((gpus > 0)); then
    cpu_args "$s"  # only for the termination log it sets up
    as_pod 0 env CUDA_VISIBLE_DEVICES= NVIDIA_VISIBLE_DEVICES=GPU-0 "$trainer" "${job_args[@]}" --fake_data \
      --termination_log "$work/termination-log" >"$work/out" 2>&1
    got=$?
    if [[ $got == 4 ]]; then
      echo "ok   4   the Job's args without a usable GPU: $(tail -n1 "$work/out")"
      # Where the verdict file is for this kind of run: --result_file, else log_dir/result.json (training).
      result=$(path_of "$s" result_file)
      [[ -z $result && -n $(path_of "$s" log_dir) ]] && ! grep -qx 'arg	--benchmark' <<<"$s" && result=$(path_of "$s" log_dir)/result.json
      verdict "no GPU" 4 "$result"
    else
      fail "$job: the Job's args without a GPU exited $got, not 4: $(tail -n2 "$work/out")"
    fi
  fi
  [[ -n $completions ]] && multinode_contract "$job" "$completions"
  [[ -n $(path_of "$s" checkpoint_dir) ]] && resume_contract "$job"
  [[ -n $(path_of "$s" benchmark_out) ]] && benchmark_contract "$job"

  for code in $codes; do
    produce "$code" >"$work/out" 2>&1
    got=$?
    [[ $got == "$code" ]] && echo "ok   $code $(grep 'error' "$work/out" | tail -n1)" \
      || { fail "$job: podFailurePolicy names $code, the scenario for it exited $got"; cat "$work/out"; }
  done
done
((failures == 0)) && echo "job contract holds for ${jobs[*]}"
exit $((failures > 0))
