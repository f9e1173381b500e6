#!/usr/bin/env bash
# ok and fail both return 0, so `A && ok ... || fail ...` is an if-then-else here.
# shellcheck disable=SC2015
# check_pool.sh REPO: scripts/check-pool.sh against a stand-in kubectl (fake_kubectl.mjs) that
# answers from pool_fixtures/ (node lists, pod and Job statuses with termination messages,
# hand-written in the shape of the API's answers: no cluster runs here) and records what it was
# asked. Each case checks the exit code, the table's rows and the
# Jobs created: one per node, pinned to it by a required node affinity on its name, with all its
# GPUs and --gpus all, never retried (backoffLimit 0), unique names and the run's label, valid
# against the API schema and Pod Security (validate_k8s.mjs, check_policy.mjs --expect pool).
# Exits 77 (skipped) without kubectl (it renders k8s/pool) or jq, except under CI.
set -uo pipefail
repo=$1
here=$(cd "$(dirname "$0")" && pwd)
script=$repo/scripts/check-pool.sh
for tool in kubectl jq; do
  if ! command -v "$tool" >/dev/null; then
    echo "$tool not found: scripts/check-pool.sh cannot be run here"
    [[ -n ${CI:-} ]] && exit 1
    exit 77
  fi
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
ok() { echo "ok   $*"; }
fail() { echo "FAIL $*"; failures=$((failures + 1)); }

# run NAME SCENARIO_JSON ARGS...: check-pool.sh with the stand-in, in $work/NAME: out, err, rc,
# seconds (wall time), state/ (the stand-in's calls and created Jobs).
run() {
  local name=$1 scenario=$2 start
  shift 2
  mkdir -p "$work/$name"
  printf '%s\n' "$scenario" >"$work/$name/scenario.json"
  start=$(date +%s.%N)
  (cd "$work/$name" && env KUBECTL="$here/fake_kubectl.mjs" REAL_KUBECTL="$(command -v kubectl)" \
    FAKE_KUBECTL_SCENARIO="$work/$name/scenario.json" FAKE_KUBECTL_STATE="$work/$name/state" \
    bash "$script" --run-id t1 --interval 1 "$@" >out 2>err)
  echo $? >"$work/$name/rc"
  echo "$(date +%s.%N) - $start" | bc >"$work/$name/seconds"
  # The created Jobs, described (pool_jobs.mjs).
  if compgen -G "$work/$name/state/created/*.yaml" >/dev/null; then
    node "$here/pool_jobs.mjs" "$work/$name"/state/created/*.yaml >"$work/$name/jobs"
  else
    : >"$work/$name/jobs"
  fi
}
rc_is() {
  local got
  got=$(cat "$work/$1/rc")
  if [[ $got == "$2" ]]; then ok "$1: exit $got"; else fail "$1: exit $got, want $2: $(tail -n3 "$work/$1/err")"; cat "$work/$1/out"; fi
}
# row NAME NODE GPUS VERDICT REASON [DETAIL_TEXT]: the table has that row.
row() {
  local name=$1 node=$2 g=$3 v=$4 r=$5 text=${6:-} line
  line=$(awk -v n="$node" '$1 == n' "$work/$name/out")
  if [[ -n $line && $(awk '{print $2, $3, $4}' <<<"$line") == "$g $v $r" && $line == *"$text"* ]]; then
    ok "$name: $(cut -c1-130 <<<"$line")"
  else
    fail "$name: no row '$node $g $v $r${text:+ ...$text}'; the table:"
    cat "$work/$name/out"
  fi
}
# jobs_are NAME NODE:GPUS...: the Jobs created are exactly these, one per node.
jobs_are() {
  local name=$1 want got
  shift
  want=$(printf '%s\n' "$@" | sort)
  got=$(awk -F'\t' '{print $2 ":" $3}' "$work/$name/jobs" | sort)
  if [[ $got == "$want" ]]; then ok "$name: Jobs for $(tr '\n' ' ' <<<"$got")"; else fail "$name: Jobs for '$(tr '\n' ' ' <<<"$got")', want '$(tr '\n' ' ' <<<"$want")'"; fi
}
# valid NAME: every created Job passes the schema, Pod Security and the pool rules, and names are
# unique DNS labels.
valid() {
  local name=$1 f
  for f in "$work/$name"/state/created/*.yaml; do
    node "$here/validate_k8s.mjs" "$f" >"$work/$name/validate" 2>&1 || { fail "$name: $(basename "$f") fails the schema: $(grep FAIL "$work/$name/validate" | head -n3)"; continue; }
    node "$here/check_policy.mjs" "$f" --expect pool >"$work/$name/policy" 2>&1 || { fail "$name: $(basename "$f") fails the policy: $(grep FAIL "$work/$name/policy" | head -n3)"; continue; }
  done
  local names
  names=$(cut -f1 "$work/$name/jobs")
  if [[ $(sort <<<"$names" | uniq -d) == "" ]] && ! grep -qvE '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$' <<<"$names"; then
    ok "$name: $(wc -l <<<"$names") Job(s) valid (schema, Pod Security, pool rules), names unique DNS labels"
  else
    fail "$name: Job names not unique DNS labels of 63 characters: $names"
  fi
  # Pinned by affinity, not nodeName; never retried; the run's label; --gpus all; the deadline.
  if awk -F'\t' -v d="$2" '$2 == "" || $4 != d || $5 != "t1" || $6 != "0" || $7 !~ /--gpus all/ || $8 != "" { bad = 1 } END { exit bad }' "$work/$name/jobs"; then
    ok "$name: every Job pinned by node affinity (no nodeName), backoffLimit 0, --gpus all, label mnist-train/pool-run=t1, activeDeadlineSeconds $2"
  else
    fail "$name: a Job is not pinned, retried, unlabelled, without --gpus all or its deadline $2:"
    cat "$work/$name/jobs"
  fi
}
called() { grep -qF -- "$2" "$work/$1/state/calls"; }
# bounded NAME: every API call (all but kubectl kustomize, which is local) carries --request-timeout.
bounded() {
  local unbounded
  unbounded=$(grep -v '"kustomize"' "$work/$1/state/calls" | grep -vF '["--request-timeout=30s",')
  if [[ -z $unbounded ]]; then
    ok "$1: every API call has --request-timeout=30s ($(grep -vc '"kustomize"' "$work/$1/state/calls") calls)"
  else
    fail "$1: API calls without --request-timeout: $(head -n3 <<<"$unbounded")"
  fi
}

# ---- every node passes ----
run all_pass '{"nodes": "nodes-pool.json",
  "pods": {"gpu-a": ["pod-creating.json", "pod-running.json", "pod-passed.json"], "gpu-b": ["pod-running.json", "pod-passed.json"]},
  "jobs": {"gpu-a": [{"active": 1}, {"active": 1}, "job-complete.json"], "gpu-b": [{"active": 1}, "job-complete.json"]}}' --timeout 60
rc_is all_pass 0
row all_pass gpu-a 1 passed ok "test accuracy 0.9555"
row all_pass gpu-b 8 passed ok
row all_pass gpu-cordoned 4 skipped cordoned
grep -q '^cpu-1 ' "$work/all_pass/out" && fail "all_pass: the node without GPUs is in the table" || ok "all_pass: the node without GPUs is not part of the pool"
# A node with 8 GPUs gets a Job asking for 8; the cordoned one and the CPU node none.
jobs_are all_pass gpu-a:1 gpu-b:8
valid all_pass 60
called all_pass '"get","nodes","-o","json"]' && ok "all_pass: nodes listed without a selector" || fail "all_pass: get nodes not called as expected"
called all_pass '"delete"' && fail "all_pass: deleted the Jobs without --cleanup" || ok "all_pass: the Jobs are kept without --cleanup"
bounded all_pass

# ---- one node fails, with the trainer's reason ----
run one_fails '{"nodes": "nodes-pool.json",
  "pods": {"gpu-a": "pod-passed.json", "gpu-b": ["pod-running.json", "pod-failed-unhealthy.json"]},
  "jobs": {"gpu-a": "job-complete.json", "gpu-b": [{"active": 1}, "job-failed-policy.json"]}}' --timeout 60 --cleanup
rc_is one_fails 4
row one_fails gpu-a 1 passed ok
row one_fails gpu-b 8 failed unhealthy "GPU 3 (PCI 0000:9b:00.0"
called one_fails '"delete","jobs","-l","mnist-train/pool-run=t1"' && ok "one_fails: --cleanup deletes the run's Jobs by its label" \
  || fail "one_fails: --cleanup did not delete by the run's label: $(grep delete "$work/one_fails/state/calls")"
bounded one_fails

# ---- GPUs the device plugin marked unhealthy: allocatable below capacity ----
# Without a selector too: a node with capacity 8 and allocatable 0 is part of the pool, and failed.
run unallocatable '{"nodes": "nodes-unhealthy.json",
  "pods": {"gpu-healthy": "pod-passed.json", "gpu-two-unhealthy": "pod-passed.json", "gpu-all-unhealthy": "pod-passed.json"},
  "jobs": {"gpu-healthy": "job-complete.json", "gpu-two-unhealthy": "job-complete.json", "gpu-all-unhealthy": "job-complete.json"}}' --timeout 30
rc_is unallocatable 4
row unallocatable gpu-healthy 8 passed ok
row unallocatable gpu-two-unhealthy 6 failed gpus_unallocatable "allocatable nvidia.com/gpu 6 of capacity 8: the device plugin reports 2 GPU(s) unhealthy"
row unallocatable gpu-all-unhealthy 0 failed gpus_unallocatable "allocatable nvidia.com/gpu 0 of capacity 8: the device plugin reports 8 GPU(s) unhealthy"
jobs_are unallocatable gpu-healthy:8

# ---- a node's Job that does not render: exit 2, the Jobs already created deleted or named ----
# Render 1 is the template, 2 gpu-a's Job (created), 3 gpu-b's (fails).
run render_fails '{"nodes": "nodes-pool.json", "kustomize_fails_from": 3}' --timeout 30 --cleanup
rc_is render_fails 2
jobs_are render_fails gpu-a:1
if called render_fails '"delete","jobs","-l","mnist-train/pool-run=t1"' && grep -q 'rendering the Job for gpu-b failed.*deleted' "$work/render_fails/err"; then
  ok "render_fails: --cleanup deletes the Job already created: $(cut -c1-120 "$work/render_fails/err")"
else
  fail "render_fails: with --cleanup: $(cat "$work/render_fails/err"), deletes: $(grep -c delete "$work/render_fails/state/calls")"
fi
run render_fails_kept '{"nodes": "nodes-pool.json", "kustomize_fails_from": 3}' --timeout 30
rc_is render_fails_kept 2
if ! called render_fails_kept '"delete"' && grep -q 'left running: mnist-train-pool-t1-0-gpu-a; remove them: kubectl delete jobs -l mnist-train/pool-run=t1' "$work/render_fails_kept/err"; then
  ok "render_fails_kept: without --cleanup the Job left running is named"
else
  fail "render_fails_kept: $(cat "$work/render_fails_kept/err")"
fi

# ---- a node never schedules, another never finishes: the deadline ----
run deadline '{"nodes": "nodes-pool.json",
  "pods": {"gpu-a": "pod-unschedulable.json", "gpu-b": ["pod-creating.json", "pod-running.json"]}}' --timeout 3s
rc_is deadline 5
row deadline gpu-a 1 pending Unschedulable "Insufficient nvidia.com/gpu"
row deadline gpu-b 8 timeout deadline "still running after 3s"
secs=$(cat "$work/deadline/seconds")
# The bound leaves room for the stand-in's start-up (a node process per call) on a loaded 2-core CI
# machine; a script that ignored the deadline would wait for ever on the running pod.
if (($(echo "$secs < 3 + 12" | bc))); then ok "deadline: returned after ${secs%.*} s (--timeout 3s, --interval 1)"; else fail "deadline: took $secs s with --timeout 3s"; fi
valid deadline 3
# No pod at all (the Job controller has not made one): pending, not passed.
run no_pod '{"nodes": "nodes-pool.json", "pods": {}}' --timeout 2 -l pool=l4
rc_is no_pod 5
row no_pod gpu-a 1 pending no_pod
called no_pod '"get","nodes","-o","json","-l","pool=l4"]' && ok "no_pod: --selector goes to kubectl get nodes -l" || fail "no_pod: the selector was not passed: $(head -n2 "$work/no_pod/state/calls")"

# ---- evicted: replaced on the same node, not a failure ----
run evicted '{"nodes": "nodes-pool.json",
  "pods": {"gpu-a": ["pod-evicted.json", "pod-evicted.json", "pod-passed.json"], "gpu-b": "pod-passed.json"},
  "jobs": {"gpu-a": [{"active": 1}, {"active": 1}, "job-complete.json"], "gpu-b": "job-complete.json"}}' --timeout 30
rc_is evicted 0
row evicted gpu-a 1 passed ok

# ---- odd node names ----
run odd_names '{"nodes": "nodes-odd.json",
  "pods": {"ip-10-0-3-7.ec2.internal": "pod-passed.json", "true": "pod-passed.json", "1e3": "pod-failed-hostile-message.json"}}' --timeout 2
rc_is odd_names 4
long=$(jq -r '.items[1].metadata.name' "$here/pool_fixtures/nodes-odd.json")
jobs_are odd_names ip-10-0-3-7.ec2.internal:1 "$long:2" true:1 1e3:1
valid odd_names 2
row odd_names ip-10-0-3-7.ec2.internal 1 passed ok
row odd_names true 1 passed ok
row odd_names 1e3 1 failed no_device
row odd_names "$long" 2 pending no_pod
row odd_names gpu-weird-count '?' failed no_gpu
# shellcheck disable=SC2016  # the node's name, literally
for bad in 'GPU_Node' '$(touch' "a\"b'c" 'line?break' '(no'; do
  grep -F -- "$bad" "$work/odd_names/out" | grep -q 'invalid_node_name' && ok "odd_names: '$bad...' reported invalid_node_name, no Job" \
    || fail "odd_names: no invalid_node_name row for '$bad'"
done
[[ ! -e $work/odd_names/PWNED ]] && ok "odd_names: a node name in shell syntax ran nothing" || fail "odd_names: a node name ran a command"
if LC_ALL=C grep -q $'[\x01-\x08\x0b-\x1f\x7f]' "$work/odd_names/out"; then
  fail "odd_names: control characters from a termination message reached the table"
else
  ok "odd_names: escape sequences and tabs of a termination message do not reach the terminal"
fi

# ---- the cluster cannot be asked; nothing to check; bad flags ----
run api_down '{"nodes": "nodes-pool.json", "fail": {"get nodes": "Unable to connect to the server: dial tcp 10.0.0.1:443: i/o timeout"}}'
rc_is api_down 3
grep -q 'i/o timeout' "$work/api_down/err" && ok "api_down: kubectl's error is shown" || fail "api_down: $(cat "$work/api_down/err")"
run not_a_list '{"nodes": {"kind": "Status", "items": "nope"}}'
rc_is not_a_list 3
run no_nodes '{"nodes": {"kind": "List", "items": []}}'
rc_is no_nodes 2
run create_refused '{"nodes": "nodes-pool.json", "fail": {"create": "Error from server (Forbidden): jobs.batch is forbidden"}}' --timeout 2
rc_is create_refused 4
row create_refused gpu-a 1 failed job_not_created "Forbidden"
for bad in "--timeout 5x" "--timeout 0" "--interval 0" "--run-id Bad_Id" "--image mnist-train" "--image a;b:1" "--namespace ../x" "--frobnicate"; do
  # shellcheck disable=SC2086  # each case is several words
  run usage '{"nodes": "nodes-pool.json"}' $bad
  if [[ $(cat "$work/usage/rc") == 2 ]] && ! grep -q '"get"' "$work/usage/state/calls" 2>/dev/null; then
    ok "usage: $bad: exit 2 before asking the cluster: $(head -c 100 "$work/usage/err")"
  else
    fail "usage: $bad: exit $(cat "$work/usage/rc") (want 2, without a kubectl get)"
  fi
  rm -rf "$work/usage"
done

# ---- --dry-run: the Jobs printed, none created; --image and --namespace reach them ----
run dry_run '{"nodes": "nodes-pool.json"}' --dry-run --image registry.example/mnist-train@sha256:0b3c0b3c0b3c0b3c0b3c0b3c0b3c0b3c0b3c0b3c0b3c0b3c0b3c0b3c0b3c0b3c -n gpu-checks
rc_is dry_run 0
if ! called dry_run '"create"' && [[ $(grep -c '^kind: Job' "$work/dry_run/out") == 2 ]] &&
   grep -q 'image: registry.example/mnist-train@sha256:0b3c' "$work/dry_run/out"; then
  ok "dry_run: 2 Jobs printed with the --image, nothing created"
else
  fail "dry_run: $(grep -c '^kind: Job' "$work/dry_run/out") Jobs printed, calls: $(cat "$work/dry_run/state/calls")"
fi
run namespace '{"nodes": "nodes-pool.json", "pods": {"gpu-a": "pod-passed.json", "gpu-b": "pod-passed.json"}}' -n gpu-checks --timeout 10
rc_is namespace 0
if [[ $(grep -c '"create","--namespace","gpu-checks"' "$work/namespace/state/calls") == 2 ]] &&
   grep -q '"get","jobs","--namespace","gpu-checks"' "$work/namespace/state/calls"; then
  ok "namespace: the Jobs are created and polled in --namespace"
else
  fail "namespace: $(grep -v nodes "$work/namespace/state/calls" | head -n4)"
fi

# ---- interrupted: the table so far, the cleanup, 128 + the signal ----
mkdir -p "$work/interrupted"
printf '%s\n' '{"nodes": "nodes-pool.json", "pods": {"gpu-a": "pod-passed.json", "gpu-b": "pod-running.json"}}' >"$work/interrupted/scenario.json"
(cd "$work/interrupted" && exec env KUBECTL="$here/fake_kubectl.mjs" REAL_KUBECTL="$(command -v kubectl)" \
  FAKE_KUBECTL_SCENARIO="$work/interrupted/scenario.json" FAKE_KUBECTL_STATE="$work/interrupted/state" \
  bash "$script" --run-id t1 --interval 1 --timeout 600 --cleanup >out 2>err) &
pid=$!
for _ in $(seq 100); do grep -q '1 passed' "$work/interrupted/err" 2>/dev/null && break; sleep 0.1; done
kill -TERM "$pid"
wait "$pid"
rc=$?
if [[ $rc == 143 ]] && grep -q '^gpu-a .* passed' "$work/interrupted/out" && grep -q '^gpu-b .* running' "$work/interrupted/out" &&
   grep -q '"delete","jobs"' "$work/interrupted/state/calls"; then
  ok "interrupted: SIGTERM: exit 143, the table so far, the Jobs deleted (--cleanup)"
else
  fail "interrupted: exit $rc (want 143), table: $(cat "$work/interrupted/out"), delete: $(grep -c delete "$work/interrupted/state/calls")"
fi

((failures == 0)) && echo "check-pool.sh: every case holds"
exit $((failures > 0))
