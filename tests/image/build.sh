#!/usr/bin/env bash
# build.sh TRAINER OUT: the fixture of the image tests. scripts/build-image.sh makes the three images
# of TRAINER in OUT/oci (and OUT/sizes.json); each is unpacked (umoci) into OUT/bundle/node-check,
# OUT/bundle/single-gpu and OUT/bundle/baseline for the run tests.
set -euo pipefail
trainer=$1 out=$2
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/image/common.sh
. "$here/common.sh"
need umoci tar python3
need_root
rm -rf "$out"
"$here/../../scripts/build-image.sh" --binary "$trainer" --out "$out"
version=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$out/sizes.json")
mkdir -p "$out/bundle"
umoci unpack --image "$out/oci:$version" "$out/bundle/node-check" >/dev/null
umoci unpack --image "$out/oci:$version-single-gpu" "$out/bundle/single-gpu" >/dev/null
umoci unpack --image "$out/oci:$version-baseline" "$out/bundle/baseline" >/dev/null
echo "ok   the three images built and unpacked in $out"
