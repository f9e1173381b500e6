#!/usr/bin/env bash
# reproducible.sh TRAINER IMAGE_DIR: a second build of the node-check image from the same inputs
# (trainer, SOURCE_DATE_EPOCH and revision as image_build's sizes.json records them), at another
# time in another folder, has the digest of the first, layer by layer.
set -euo pipefail
trainer=$1 image_dir=$2
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/image/common.sh
. "$here/common.sh"
need umoci tar python3
need_root
[[ -f $image_dir/sizes.json ]] || { echo "FAIL no $image_dir/sizes.json: image_build did not run or failed"; exit 1; }
second=$(mktemp -d)
trap 'rm -rf "$second"' EXIT
read -r epoch revision binary_sha256 < <(python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(s["source_date_epoch"], s["revision"], s["binary_sha256"])' "$image_dir/sizes.json")
[[ $(sha256sum "$trainer" | cut -d' ' -f1) == "$binary_sha256" ]] ||
  { echo "FAIL $trainer changed since image_build made the first image (rebuilt in between?): not the same inputs"; exit 1; }
SOURCE_DATE_EPOCH=$epoch IMAGE_REVISION=$revision "$here/../../scripts/build-image.sh" --binary "$trainer" --out "$second" --node-check-only >/dev/null
python3 - "$image_dir" "$second" <<'PY'
import json, sys
first, second = (json.load(open(d + "/sizes.json")) for d in sys.argv[1:3])
tag = first["version"]
a, b = first["images"][tag], second["images"][tag]
failed = False
for i, (la, lb) in enumerate(zip(a["layers"], b["layers"])):
    same = la["digest"] == lb["digest"]
    failed |= not same
    print(f"{'ok  ' if same else 'FAIL'} layer {i} ({la['what']}): {la['digest']} {'==' if same else '!='} {lb['digest']}")
same = a["manifest_digest"] == b["manifest_digest"] and len(a["layers"]) == len(b["layers"])
failed |= not same
print(f"{'ok  ' if same else 'FAIL'} manifest {a['manifest_digest']} {'==' if same else '!='} {b['manifest_digest']}")
sys.exit(1 if failed else 0)
PY
