#!/usr/bin/env bash
# render.sh KUSTOMIZATION_DIR OUT: `kubectl kustomize` the folder into OUT, as `kubectl apply -k`
# would build it. Without kubectl (it embeds kustomize) this exits 77, which ctest reports as
# skipped; under CI (CI set, as .ci/run runs) a missing kubectl is a failure instead.
# With MNIST_GKE_ACCELERATOR set, the folder is rendered from a copy of its k8s/ tree whose
# components/gke/accelerator.env sets that GPU type, as the operator does (docs/KUBERNETES.md):
# the gke overlays do not render without one (gke_accelerator.sh checks that).
set -uo pipefail
dir=$1 out=$2
if ! command -v kubectl >/dev/null; then
  echo "kubectl not found: cannot render $dir (install kubectl 1.27 or newer; it embeds kustomize)"
  [[ -n ${CI:-} ]] && exit 1
  exit 77
fi
if [[ -n ${MNIST_GKE_ACCELERATOR:-} ]]; then
  dir=$(cd "$dir" && pwd)
  root=$dir
  while [[ $root != / && ! -d $root/components/gke ]]; do root=$(dirname "$root"); done
  [[ $root != / ]] || { echo "FAIL MNIST_GKE_ACCELERATOR: no components/gke above $dir"; exit 1; }
  copy=$(mktemp -d)
  trap 'rm -rf "$copy"' EXIT
  cp -r "$root" "$copy/k8s"
  echo "accelerator=$MNIST_GKE_ACCELERATOR" >>"$copy/k8s/components/gke/accelerator.env"
  dir=$copy/k8s${dir#"$root"}
fi
kubectl kustomize "$dir" >"$out" || { echo "FAIL kubectl kustomize $dir"; exit 1; }
