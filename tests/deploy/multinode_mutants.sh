#!/usr/bin/env bash
# multinode_mutants.sh TRAINER KUSTOMIZATION_DIR: the multi-node checks can fail. The folder (k8s/
# multinode) is rendered as `kubectl apply -k` would; its objects must pass check_policy.mjs
# (--expect multinode) and job_contract.sh as they are, and each broken copy that
# multinode_mutants.mjs makes (a subdomain that is not the Service's name, completions other than
# --world_size, a Service with a cluster IP, a --rendezvous naming rank 1, a NonIndexed Job, ...)
# must fail the checker it is meant for, with the FAIL line that names its mistake.
# Exits 77 (skipped) without kubectl, except under CI.
set -uo pipefail
trainer=$1 dir=$2
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
bash "$here/render.sh" "$dir" "$work/rendered.yaml" || exit $?

# run CHECKER MANIFEST: the checker's output (FAIL lines and its exit status).
run() {
  case $1 in
    policy) node "$here/check_policy.mjs" "$2" --expect multinode ;;
    contract) bash "$here/job_contract.sh" "$trainer" "$2" ;;
  esac
}

# The unbroken objects pass both: what the mutants change is all that can make them fail.
for checker in policy contract; do
  if run "$checker" "$work/rendered.yaml" >"$work/out" 2>&1; then
    echo "ok   $dir as it is passes the $checker checks: $(tail -n1 "$work/out")"
  else
    echo "FAIL $dir as it is fails the $checker checks:"
    grep FAIL "$work/out"
    exit 1
  fi
done

n=0
while IFS=$'\t' read -r name checker text what; do
  n=$((n + 1))
  node "$here/multinode_mutants.mjs" "$work/rendered.yaml" "$name" "$work/$name.yaml" || { echo "FAIL mutant $name: not made"; failures=$((failures + 1)); continue; }
  run "$checker" "$work/$name.yaml" >"$work/out" 2>&1
  rc=$?
  if [[ $rc != 0 ]] && grep '^FAIL' "$work/out" | grep -qF -- "$text"; then
    echo "ok   $checker rejects $name ($what): $(grep '^FAIL' "$work/out" | grep -F -- "$text" | head -n1 | cut -c1-150)"
  else
    echo "FAIL $checker accepts $name ($what): exit $rc, no FAIL line with \"$text\""
    grep '^FAIL' "$work/out" | head -n5
    failures=$((failures + 1))
  fi
done < <(node "$here/multinode_mutants.mjs" --list)
((n > 0)) || { echo "FAIL no mutants"; exit 1; }
echo "$((n - failures))/$n broken copies of $dir rejected"
exit $((failures > 0))
