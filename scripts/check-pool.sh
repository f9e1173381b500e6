#!/usr/bin/env bash
# check-pool.sh: the node check on every GPU node of a pool, at once. One Job per node, from the
# template k8s/pool (the base Job pinned to the node by a required node affinity on its name,
# asking for all of the node's nvidia.com/gpu, --gpus all, never retried), then waits
# up to --timeout and prints one row per node: NODE GPUS VERDICT REASON DETAIL, the verdict read
# from the pod's termination message (docs/KUBERNETES.md: "Every node of a pool").
#
# Exit codes:
#   0  every node passed (skipped, cordoned, rows aside)
#   1  a bug in this script
#   2  bad command line, kubectl or jq missing, a template that does not render to one Job (or a
#      node's Job that does not render), or no node to check
#   3  the cluster could not be asked: the node list could not be read, or no poll of the Jobs
#      succeeded
#   4  at least one node failed (its check failed, or it cannot be checked: no GPU where the
#      selector chose it, fewer allocatable GPUs than its capacity (the device plugin marked some
#      unhealthy), a name that is not a node name, its Job not created)
#   5  none failed, but at least one had not finished by the deadline (pending or timeout)
#   130, 143  interrupted (SIGINT, SIGTERM): the table so far is printed, --cleanup still applies
# Needs kubectl (KUBECTL overrides which) and jq.
set -euo pipefail
((BASH_VERSINFO[0] > 4 || (BASH_VERSINFO[0] == 4 && BASH_VERSINFO[1] >= 4))) ||
  { echo "check-pool.sh: error: needs bash 4.4 or newer (this is $BASH_VERSION)" >&2; exit 2; }

usage() {
  cat <<'EOF'
Usage: scripts/check-pool.sh [options]
Runs the mnist-train node check on every GPU node of a pool: one Job per node, pinned to it,
with all its GPUs; waits, then prints a table of verdicts.

  -l, --selector SELECTOR  the nodes to check (a kubectl label selector, e.g.
                           cloud.google.com/gke-nodepool=gpu); default: every node with
                           nvidia.com/gpu capacity or allocatable above 0; a node with
                           fewer allocatable than its capacity fails (gpus_unallocatable)
  -n, --namespace NS       where the Jobs go (default: kubectl's current namespace)
      --timeout DURATION   how long to wait for the verdicts: 900, 900s, 15m or 1h (default 30m);
                           each Job's activeDeadlineSeconds too
      --interval SECONDS   between polls (default 10)
      --template DIR       the kustomization of the per-node Job (default: k8s/pool beside this
                           script; k8s/overlays/aks/pool on AKS)
      --image REF          the image, e.g. REGISTRY/mnist-train:1.0.0 or REGISTRY/mnist-train@sha256:...
      --run-id ID          names and labels this run's Jobs (default: the UTC time, YYYYMMDDhhmmss)
      --cleanup            delete this run's Jobs and their pods at the end
      --dry-run            print the Jobs instead of creating them
  -h, --help

Exit codes: 0 all passed (cordoned nodes skipped), 2 usage, 3 cluster unreachable, 4 a node failed, 5 a node pending or
timed out at the deadline, 130/143 interrupted.
EOF
}

die() { echo "check-pool.sh: error: $2" >&2; exit "$1"; }
note() { echo "check-pool.sh: $*" >&2; }

here=$(cd "$(dirname "$0")" && pwd)
kubectl=${KUBECTL:-kubectl}
# api ARGS...: a call to the API server, bounded (kubectl waits forever by default on a server
# that accepts the connection and never answers). Rendering (kubectl kustomize) is local.
api() { "$kubectl" --request-timeout=30s "$@"; }
selector="" namespace="" timeout_text=30m interval=10 template=$here/../k8s/pool image=""
run_id="" cleanup=0 dry_run=0
while (($#)); do
  case $1 in
    -l|--selector|-n|--namespace|--timeout|--interval|--template|--image|--run-id)
      (($# >= 2)) || die 2 "$1 needs a value (see --help)"
      case $1 in
        -l|--selector) selector=$2 ;;
        -n|--namespace) namespace=$2 ;;
        --timeout) timeout_text=$2 ;;
        --interval) interval=$2 ;;
        --template) template=$2 ;;
        --image) image=$2 ;;
        --run-id) run_id=$2 ;;
      esac
      shift 2 ;;
    --selector=*|--namespace=*|--timeout=*|--interval=*|--template=*|--image=*|--run-id=*)
      set -- "${1%%=*}" "${1#*=}" "${@:2}" ;;
    --cleanup) cleanup=1; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die 2 "unknown argument '$1' (see --help)" ;;
  esac
done

# ---- the command line, checked before anything is asked of the cluster ----
if [[ $timeout_text =~ ^([0-9]{1,6})(s|m|h)?$ ]]; then
  case ${BASH_REMATCH[2]} in
    m) timeout_s=$((10#${BASH_REMATCH[1]} * 60)) ;;
    h) timeout_s=$((10#${BASH_REMATCH[1]} * 3600)) ;;
    *) timeout_s=$((10#${BASH_REMATCH[1]})) ;;
  esac
else
  die 2 "--timeout '$timeout_text': expected seconds, or a number with s, m or h (30m)"
fi
((timeout_s >= 1 && timeout_s <= 7 * 86400)) || die 2 "--timeout $timeout_text: from 1s to a week"
if ! [[ $interval =~ ^[0-9]{1,4}$ ]] || ((10#$interval < 1)); then
  die 2 "--interval '$interval': whole seconds, 1 or more"
fi
interval=$((10#$interval))
# Names and values that go into manifests and selectors: only characters that need no quoting.
[[ -z $namespace || $namespace =~ ^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$ ]] || die 2 "--namespace '$namespace' is not a namespace name"
[[ -z $selector || $selector =~ ^[A-Za-z0-9_./=!,\ ()-]+$ ]] || die 2 "--selector '$selector': unexpected characters for a label selector"
if [[ -n $image ]]; then
  [[ $image =~ ^[a-z0-9][a-z0-9._/:-]*(@sha256:[0-9a-f]{64})?$ ]] || die 2 "--image '$image' is not an image reference"
  [[ $image == *@sha256:* || ${image##*/} == *:* ]] || die 2 "--image '$image' has no tag or digest: pin the version (REGISTRY/mnist-train:1.0.0)"
fi
run_id=${run_id:-$(date -u +%Y%m%d%H%M%S)}
[[ $run_id =~ ^[a-z0-9]([-a-z0-9]{0,14}[a-z0-9])?$ ]] || die 2 "--run-id '$run_id': 1 to 16 lower-case letters, digits or '-'"
[[ -d $template ]] || die 2 "--template $template: no such folder"
command -v "$kubectl" >/dev/null || die 2 "kubectl not found (install kubectl 1.27 or newer, or set KUBECTL)"
command -v jq >/dev/null || die 2 "jq not found (install jq: apt-get install jq, brew install jq)"

ns_args=()
[[ -n $namespace ]] && ns_args=(--namespace "$namespace")
run_label=mnist-train/pool-run
run_selector="$run_label=$run_id"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# ---- the template: rendered once, exactly one Job ----
"$kubectl" kustomize "$template" >"$work/template.yaml" 2>"$work/err" ||
  die 2 "kubectl kustomize $template failed: $(tr '\n' ' ' <"$work/err" | cut -c1-300)"
kinds=$(sed -n 's/^kind: //p' "$work/template.yaml" | tr '\n' ' ')
[[ $kinds == "Job " ]] || die 2 "$template renders ${kinds:-nothing}; the per-node template must render exactly one Job"
# Its name, which each node's Job extends (kustomize writes metadata's keys sorted, two deep).
base_name=$(sed -n '/^metadata:/,/^[a-z]/s/^  name: //p' "$work/template.yaml" | head -n1)
[[ $base_name =~ ^[a-z0-9]([-a-z0-9]{0,39}[a-z0-9])?$ ]] ||
  die 2 "$template's Job is called '$base_name': a DNS label of at most 41 characters leaves room for the node's part"

# ---- the nodes ----
node_args=(get nodes -o json)
[[ -n $selector ]] && node_args+=(-l "$selector")
api "${node_args[@]}" >"$work/nodes.json" 2>"$work/err" ||
  die 3 "kubectl get nodes failed: $(tr '\n' ' ' <"$work/err" | cut -c1-300)"
# One line per node: name, allocatable and capacity nvidia.com/gpu, unschedulable, split by the unit separator
# (\x1f: not whitespace, so an empty field stays a field). Control characters become "?", so a
# name cannot split a row; whatever is missing or of another type becomes "".
jq -r 'if (.items | type) == "array" then .items[] else error("not a NodeList") end
       | [(.metadata.name? // "" | if type == "string" then . else "" end),
          (.status.allocatable["nvidia.com/gpu"]? // "" | if type == "string" or type == "number" then tostring else "" end),
          (.status.capacity["nvidia.com/gpu"]? // "" | if type == "string" or type == "number" then tostring else "" end),
          (.spec.unschedulable? // false | tostring)]
       | map(gsub("[\u0000-\u001f\u007f]"; "?")) | join("\u001f")' \
  "$work/nodes.json" >"$work/nodes.tsv" 2>"$work/err" ||
  die 3 "kubectl get nodes answered something that is not a NodeList: $(head -c 200 "$work/err")"

# A node's name is a DNS subdomain (the API server refuses any other): 253 bytes at most, of
# lower-case dot-separated labels.
valid_node_name() {
  ((${#1} <= 253)) && [[ $1 =~ ^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$ ]]
}
# shown TEXT: one line of at most 120 printable characters, for the table.
shown() { printf '%s' "$1" | LC_ALL=C tr -c '[:print:]' '?' | cut -c1-120; }

nodes=() gpus=() verdict=() reason=() detail=() job=()
add_row() { nodes+=("$1"); gpus+=("$2"); verdict+=("$3"); reason+=("$4"); detail+=("$5"); job+=("$6"); }
while IFS=$'\x1f' read -r name count capacity unschedulable; do
  if ! valid_node_name "$name"; then
    add_row "$(shown "${name:-(no name)}")" "-" failed invalid_node_name "the API answered a node name that is not a DNS subdomain: $(shown "$name")" ""
    continue
  fi
  if [[ -n $count && ! $count =~ ^[0-9]{1,4}$ ]] || [[ -n $capacity && ! $capacity =~ ^[0-9]{1,4}$ ]]; then
    add_row "$name" '?' failed no_gpu "nvidia.com/gpu allocatable '$(shown "$count")', capacity '$(shown "$capacity")': not GPU counts" ""
    continue
  fi
  # A missing allocatable is none; a missing capacity says nothing beyond allocatable.
  count=$((10#${count:-0}))
  capacity=$((10#${capacity:-$count}))
  if ((count == 0 && capacity == 0)); then
    # Without a selector, nodes without GPUs are simply not part of the pool.
    [[ -z $selector ]] && continue
    add_row "$name" "$count" failed no_gpu "allocatable nvidia.com/gpu is 0: is the NVIDIA device plugin running there?" ""
    continue
  fi
  # The device plugin takes a GPU it finds unhealthy out of allocatable and leaves capacity: a
  # check on the rest would pass a node with broken GPUs.
  if ((capacity > count)); then
    add_row "$name" "$count" failed gpus_unallocatable "allocatable nvidia.com/gpu $count of capacity $capacity: the device plugin reports $((capacity - count)) GPU(s) unhealthy" ""
    continue
  fi
  if [[ $unschedulable == true ]]; then
    add_row "$name" "$count" skipped cordoned "spec.unschedulable: uncordon it to check it" ""
    continue
  fi
  add_row "$name" "$count" pending not_listed "its Job is not among kubectl get jobs -l $run_label=$run_id" ""
done <"$work/nodes.tsv"
if ((${#nodes[@]} == 0)); then
  [[ -n $selector ]] && die 2 "no node matches --selector '$selector'"
  die 2 "no node to check: none has nvidia.com/gpu (is the NVIDIA device plugin installed?)"
fi

# ---- one Job per node ----
# cleanup_jobs: with --cleanup, deletes this run's Jobs (their pods go with them).
cleanup_jobs() {
  ((cleanup)) || return 0
  api delete jobs "${ns_args[@]}" -l "$run_selector" --ignore-not-found --wait=false >/dev/null 2>"$work/err" ||
    note "deleting the Jobs failed: $(tr '\n' ' ' <"$work/err" | cut -c1-200)"
}
# job_for I NAME: renders node I's Job into $work/jobs/I/job.yaml. Every value written into the
# kustomization was checked above (node names, image, run id) and is double-quoted, so that a node
# called "true" or "1e3" stays a string.
job_for() {
  local i=$1 name=$2 dir=$work/jobs/$1 slug suffix
  mkdir -p "$dir"
  cp "$work/template.yaml" "$dir/template.yaml"
  # mnist-train-pool-RUN-I-NODE, cut to the 63 characters of a Job name (the index keeps it unique).
  suffix="-$run_id-$i"
  slug=$(tr -c 'a-z0-9-' '-' <<<"$name" | tr -s '-')
  slug=${slug:0:$((63 - ${#base_name} - ${#suffix} - 1 > 0 ? 63 - ${#base_name} - ${#suffix} - 1 : 0))}
  while [[ $slug == *- ]]; do slug=${slug%-}; done
  slug=${slug#-}
  job[i]="$base_name$suffix${slug:+-$slug}"
  {
    echo "apiVersion: kustomize.config.k8s.io/v1beta1"
    echo "kind: Kustomization"
    echo "resources: [template.yaml]"
    echo "nameSuffix: \"${job[i]#"$base_name"}\""
    echo "labels:"
    echo "  - pairs: {\"$run_label\": \"$run_id\"}"
    echo "    includeTemplates: true"
    echo "commonAnnotations: {\"mnist-train/node\": \"$name\"}"
    echo "patches:"
    echo "  - target: {group: batch, version: v1, kind: Job}"
    echo "    patch: |-"
    echo "      apiVersion: batch/v1"
    echo "      kind: Job"
    echo "      metadata: {name: any}"
    echo "      spec:"
    echo "        activeDeadlineSeconds: $timeout_s"
    echo "        template:"
    echo "          spec:"
    echo "            affinity:"
    echo "              nodeAffinity:"
    echo "                requiredDuringSchedulingIgnoredDuringExecution:"
    echo "                  nodeSelectorTerms:"
    echo "                    - matchFields: [{key: metadata.name, operator: In, values: [\"$name\"]}]"
    echo "            containers:"
    echo "              - name: mnist-train"
    [[ -n $image ]] && echo "                image: \"$image\""
    echo "                resources: {limits: {nvidia.com/gpu: ${gpus[i]}}}"
  } >"$dir/kustomization.yaml"
  "$kubectl" kustomize "$dir" >"$dir/job.yaml" 2>"$dir/err"
}

for i in "${!nodes[@]}"; do
  [[ ${verdict[i]} == pending ]] || continue
  if ! job_for "$i" "${nodes[i]}"; then
    why="rendering the Job for ${nodes[i]} failed: $(tr '\n' ' ' <"$work/jobs/$i/err" | cut -c1-300)"
    made=()
    ((dry_run)) || for j in "${!nodes[@]}"; do
      ((j < i)) && [[ ${verdict[j]} == pending && -n ${job[j]} ]] && made+=("${job[j]}")
    done
    ((${#made[@]} == 0)) && die 2 "$why"
    if ((cleanup)); then
      cleanup_jobs
      die 2 "$why; this run's Jobs deleted (--cleanup)"
    fi
    die 2 "$why; left running: ${made[*]}; remove them: kubectl delete jobs${namespace:+ -n $namespace} -l $run_selector"
  fi
  if ((dry_run)); then
    echo "---"
    cat "$work/jobs/$i/job.yaml"
  elif ! api create "${ns_args[@]}" -f "$work/jobs/$i/job.yaml" >/dev/null 2>"$work/err"; then
    verdict[i]=failed reason[i]=job_not_created detail[i]=$(shown "$(tr '\n' ' ' <"$work/err")")
  fi
done
((dry_run)) && exit 0

# ---- waiting ----
# poll: one line per Job of this run: NAME STATE REASON DETAIL (split by \x1f, as above), STATE
# one of passed, failed, running, pending, timeout (the Job's own deadline passed after its pod
# started). The Job's conditions decide when present; else its newest pod (a replacement after an
# eviction is newer). The reason of a finished pod is the trainer's "reason=" token.
# shellcheck disable=SC2016  # jq's variables, not the shell's
poll_filter='
  def clean: tostring | gsub("[\u0000-\u001f\u007f-\u009f]"; " ");
  def items: if (.items | type) == "array" then .items else error("not a list") end;
  def token: (capture(" [|] reason=(?<r>[a-z0-9_]{1,40})( |$)").r) // null;
  def headline: split(" | ")[0] | .[0:160];
  ($pods[0] | items) as $pods
  | items[]
  | (.metadata.name? // "" | clean) as $job
  | select($job != "")
  | ([$pods[] | select((.metadata.labels?["batch.kubernetes.io/job-name"]? // .metadata.labels?["job-name"]?) == $job)]
     | sort_by(.metadata.creationTimestamp? // "") | last) as $pod
  | ([.status.conditions?[]? | select(.status == "True")] | map(.type) ) as $true
  | ([.status.conditions?[]? | select(.type == "Failed" and .status == "True")][0]) as $failed
  | ($pod.status.containerStatuses?[0]? // {}) as $cs
  | ($cs.state.terminated? // null) as $done
  | ($done.message? // "" | clean) as $msg
  | ([$pod.status.conditions?[]? | select(.type == "PodScheduled" and .status == "False")][0]) as $unscheduled
  | ($cs.state.waiting? // null) as $waiting
  | ([$pod.status.conditions?[]? | select(.type == "DisruptionTarget" and .status == "True")] | length > 0) as $disrupted
  | ($pod != null and ($pod.status.startTime? != null or $done != null)) as $started
  | if ($true | index("Complete")) or ($true | index("SuccessCriteriaMet")) or ($done != null and $done.exitCode == 0 and $failed == null) then
      [$job, "passed", ($msg | token // "ok"), ($msg | headline)]
    elif $failed != null and ($failed.reason? == "DeadlineExceeded") then
      [$job, (if $started then "timeout" else "pending" end), "DeadlineExceeded", ($failed.message? // "" | clean)]
    elif $disrupted and $failed == null then
      [$job, "pending", "replaced", ("evicted or preempted: the Job starts another pod on the node; " + ($pod.status.message? // "") | clean)]
    elif $done != null and ($done.exitCode? // 0) != 0 then
      [$job, "failed", ($msg | token // ("exit \($done.exitCode) \($done.reason? // "")" | clean)), (if $msg == "" then "no termination message" else ($msg | headline) end)]
    elif $failed != null then
      [$job, "failed", ($failed.reason? // "Failed" | clean), ($failed.message? // "" | clean)]
    elif $pod == null then
      [$job, "pending", "no_pod", "the Job has no pod yet"]
    elif $pod.status.phase? == "Running" then
      [$job, "running", "running", ("since \($pod.status.startTime? // "?")" | clean)]
    elif $pod.status.phase? == "Failed" then
      [$job, "failed", ($pod.status.reason? // "pod_failed" | clean), ($pod.status.message? // "" | clean)]
    elif $unscheduled != null then
      [$job, "pending", ($unscheduled.reason? // "Unschedulable" | clean), ($unscheduled.message? // "" | clean)]
    elif $waiting != null then
      [$job, "pending", ($waiting.reason? // "Waiting" | clean), ($waiting.message? // "" | clean)]
    else
      [$job, "pending", ($pod.status.phase? // "Pending" | clean), ""]
    end
  | map(.[0:300]) | join("\u001f")'
poll() {
  api get jobs "${ns_args[@]}" -l "$run_selector" -o json >"$work/jobs.json" 2>"$work/err" &&
    api get pods "${ns_args[@]}" -l "$run_selector" -o json >"$work/pods.json" 2>>"$work/err" &&
    jq -r --slurpfile pods "$work/pods.json" "$poll_filter" "$work/jobs.json" >"$work/states.tsv" 2>>"$work/err"
}

interrupted=0
trap 'interrupted=130' INT
trap 'interrupted=143' TERM
count() { local v n=0; for v in "${verdict[@]}"; do [[ $v == "$1" ]] && n=$((n + 1)); done; echo "$n"; }

started=$SECONDS polled=0 last_progress=""
declare -A index_of
for i in "${!job[@]}"; do [[ -n ${job[i]} ]] && index_of[${job[i]}]=$i; done
while ((${#index_of[@]})); do
  if poll; then
    polled=1
    while IFS=$'\x1f' read -r name state why text; do
      [[ -n ${index_of[$name]+x} ]] || continue
      i=${index_of[$name]}
      [[ ${verdict[i]} == passed || ${verdict[i]} == failed || ${verdict[i]} == timeout ]] && continue
      verdict[i]=$state reason[i]=$why detail[i]=$text
    done <"$work/states.tsv"
  else
    note "polling the Jobs failed (trying again): $(tr '\n' ' ' <"$work/err" | cut -c1-200)"
  fi
  unfinished=$(($(count pending) + $(count running)))
  progress="$(count passed) passed, $(count failed) failed, $(count running) running, $(count pending) pending"
  [[ $progress != "$last_progress" ]] && note "[$(printf '%5d' $((SECONDS - started)))s] $progress"
  last_progress=$progress
  ((unfinished == 0 || interrupted)) && break
  left=$((started + timeout_s - SECONDS))
  ((left > 0)) || break
  sleep $((left < interval ? left : interval)) &
  wait $! || true
  ((interrupted)) && break
done
((polled || ${#index_of[@]} == 0)) || { cleanup_jobs; die 3 "no poll of the Jobs succeeded within $timeout_text"; }
# At the deadline: a pod that never started is pending, one that ran is out of time (interrupted
# before it, they stay as they were).
for i in "${!verdict[@]}"; do
  if ((interrupted == 0)) && [[ ${verdict[i]} == running ]]; then
    verdict[i]=timeout reason[i]=deadline detail[i]="still running after $timeout_text${detail[i]:+ (${detail[i]})}"
  fi
done

# ---- the table ----
w_node=4 w_reason=6
for i in "${!nodes[@]}"; do
  ((${#nodes[i]} > w_node)) && w_node=${#nodes[i]}
  ((${#reason[i]} > w_reason)) && w_reason=${#reason[i]}
done
# A longer name overflows its column, in its row only.
((w_node > 40)) && w_node=40
((w_reason > 32)) && w_reason=32
printf "%-${w_node}s  %4s  %-7s  %-${w_reason}s  %s\n" NODE GPUS VERDICT REASON DETAIL
for i in "${!nodes[@]}"; do
  printf "%-${w_node}s  %4s  %-7s  %-${w_reason}s  %s\n" "${nodes[i]}" "${gpus[i]}" "${verdict[i]}" "${reason[i]:0:32}" "${detail[i]}"
done
summary="$(count passed) passed, $(count failed) failed, $(count pending) pending, $(count timeout) timed out, $(count skipped) skipped"
((interrupted)) && summary+=", $(count running) running when interrupted"
echo "${#nodes[@]} node(s): $summary (run $run_id)"
cleanup_jobs
ns_text=${namespace:+ -n $namespace}
((cleanup)) || echo "Jobs: kubectl get jobs$ns_text -l $run_selector; remove them: kubectl delete jobs$ns_text -l $run_selector"

((interrupted)) && exit "$interrupted"
(($(count failed))) && exit 4
(($(count pending) + $(count timeout))) && exit 5
exit 0
