#!/usr/bin/env bash
# image_tags.sh REPO: the manifests run the images CI builds (scripts/build-image.sh): every
# mnist-train image in k8s/ is tagged with CMakeLists.txt's project(VERSION), the node check's as
# VERSION and the benchmark's (which needs cuBLASLt) as VERSION-baseline; a version bump
# that misses a manifest fails here, as does a committed kustomization that retags them.
set -uo pipefail
repo=$1
version=$(sed -nE 's/^project\(mnist_train VERSION ([0-9]+\.[0-9]+\.[0-9]+).*/\1/p' "$repo/CMakeLists.txt")
[[ -n $version ]] || { echo "FAIL no project(mnist_train VERSION x.y.z) in CMakeLists.txt"; exit 1; }
failures=0 n=0
while IFS= read -r file; do
  while IFS= read -r ref; do
    n=$((n + 1))
    want=mnist-train:$version
    [[ $file == */benchmark/* ]] && want=mnist-train:$version-baseline
    if [[ $ref == "$want" ]]; then
      echo "ok   ${file#"$repo"/}: $ref"
    else
      echo "FAIL ${file#"$repo"/}: image $ref, want $want (CMakeLists.txt's version $version)"
      failures=$((failures + 1))
    fi
  done < <(sed -nE 's/^[[:space:]]*(- )?image:[[:space:]]*"?(mnist-train[^" ]*)"?.*/\2/p' "$file")
done < <(find "$repo/k8s" -name '*.yaml' -not -name kustomization.yaml | sort)
# No kustomization retags them (an `images:` entry would render another tag than the file says).
while IFS= read -r k; do
  echo "FAIL ${k#"$repo"/}: sets images: the committed kustomizations keep the manifests' tags"
  failures=$((failures + 1))
done < <(find "$repo/k8s" -name kustomization.yaml -exec grep -l '^images:' {} +)
((n >= 2)) || { echo "FAIL only $n mnist-train image(s) found in k8s/"; exit 1; }
echo "$((n - failures))/$n mnist-train images tagged for version $version"
exit $((failures > 0))
