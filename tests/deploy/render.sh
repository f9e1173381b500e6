#!/usr/bin/env bash
# render.sh KUSTOMIZATION_DIR OUT: `kubectl kustomize` the folder into OUT, as `kubectl apply -k`
# would build it. Without kubectl (it embeds kustomize) this exits 77, which ctest reports as
# skipped; under CI (CI set, as .ci/run runs) a missing kubectl is a failure instead.
set -uo pipefail
dir=$1 out=$2
if ! command -v kubectl >/dev/null; then
  echo "kubectl not found: cannot render $dir (install kubectl 1.27 or newer; it embeds kustomize)"
  [[ -n ${CI:-} ]] && exit 1
  exit 77
fi
kubectl kustomize "$dir" >"$out" || { echo "FAIL kubectl kustomize $dir"; exit 1; }
