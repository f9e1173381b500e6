#!/usr/bin/env bash
# gke_accelerator.sh K8S_DIR: the GKE GPU type is the operator's to set, and cannot be forgotten:
# as committed, components/gke/accelerator.env sets none and every gke overlay fails to render,
# naming data.accelerator (a default type would leave the Job Pending on clusters without it, with
# nothing saying why); after the documented one-liner, every Job of every gke overlay selects that
# type, and the value's ConfigMap is not among the objects applied. Exits 77 (skipped) without
# kubectl, except under CI.
set -uo pipefail
k8s=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v kubectl >/dev/null; then
  echo "kubectl not found: cannot render the gke overlays"
  [[ -n ${CI:-} ]] && exit 1
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL $*"; failures=$((failures + 1)); }

if grep -q '^[[:space:]]*accelerator[[:space:]]*=' "$k8s/components/gke/accelerator.env"; then
  fail "components/gke/accelerator.env sets a GPU type: the repository must leave it to the operator"
else
  echo "ok   components/gke/accelerator.env sets no GPU type"
fi
cp -r "$k8s" "$work/k8s"
sed -i '/^[[:space:]]*accelerator[[:space:]]*=/d' "$work/k8s/components/gke/accelerator.env"
mapfile -t overlays < <(cd "$work/k8s" && find overlays/gke -name kustomization.yaml -printf '%h\n' | sort)
((${#overlays[@]} >= 4)) || fail "only ${#overlays[@]} gke overlays found"
for o in "${overlays[@]}"; do
  if kubectl kustomize "$work/k8s/$o" >"$work/out" 2>"$work/err"; then
    fail "$o renders without a GPU type set ($(grep -c '^kind: Job' "$work/out") Job(s), nodeSelector $(grep -o 'gke-accelerator: .*' "$work/out" | head -n1))"
  elif grep -q 'data.accelerator' "$work/err"; then
    # shellcheck disable=SC2016  # kustomize's backquotes, literally
    echo "ok   $o: does not render until the GPU type is set: $(grep -o 'fieldPath `data.accelerator` is missing' "$work/err" | head -n1)"
  else
    fail "$o fails to render, but not for the GPU type: $(head -c 300 "$work/err")"
  fi
done

# The one-liner of docs/KUBERNETES.md and the component's comment.
(cd "$work" && echo accelerator=nvidia-tesla-t4 >> k8s/components/gke/accelerator.env)
for o in "${overlays[@]}"; do
  kubectl kustomize "$work/k8s/$o" >"$work/out" 2>"$work/err" || { fail "$o does not render with the type set: $(head -c 300 "$work/err")"; continue; }
  jobs=$(grep -c '^kind: Job' "$work/out")
  set_to=$(grep -c 'cloud.google.com/gke-accelerator: nvidia-tesla-t4$' "$work/out")
  if ((jobs > 0 && set_to == jobs)) && ! grep -q 'mnist-train-gke-accelerator' "$work/out" &&
     node "$here/check_policy.mjs" "$work/out" --expect gke >"$work/policy"; then
    echo "ok   $o: with the type set, its $jobs Job(s) select nvidia-tesla-t4, and the value's ConfigMap is not applied"
  else
    fail "$o with the type set: $set_to of $jobs Job(s) select it, ConfigMap in output: $(grep -c 'mnist-train-gke-accelerator' "$work/out"); $(grep FAIL "$work/policy" | head -n2)"
  fi
done
exit $((failures > 0))
