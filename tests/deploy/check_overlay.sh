#!/usr/bin/env bash
# check_overlay.sh KUSTOMIZATION_DIR [EXPECT]: renders the folder as `kubectl apply -k` would and
# checks every object: the strict API schema (validate_k8s.mjs), then Pod Security "restricted",
# this project's rules, the objects' agreement and what EXPECT (aks,gke,eks,plain,persistent,
# benchmark,multinode,pool,runtimeclass; from the overlay's path) promises (check_policy.mjs).
# Exits 77 (skipped) without kubectl, except under CI.
set -uo pipefail
dir=$1 expect=${2:-}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bash "$here/render.sh" "$dir" "$work/rendered.yaml" || exit $?
echo "kubectl kustomize $dir: $(grep -c '^kind:' "$work/rendered.yaml") object(s): $(sed -n 's/^kind: //p' "$work/rendered.yaml" | sort | tr '\n' ' ')"
rc=0
node "$here/validate_k8s.mjs" "$work/rendered.yaml" | sed "s|$work/rendered.yaml|$dir|" || rc=1
node "$here/check_policy.mjs" "$work/rendered.yaml" --expect "$expect" || rc=1
exit $rc
