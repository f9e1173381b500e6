#!/usr/bin/env bash
# gpu_carry.sh IMAGE_DIR IDX_DIR CARRY: what a GPU machine without umoci, runtimes or network needs
# to run the node-check image's layer A (the trainer and its libraries: the single-GPU Job needs
# nothing else; NCCL's layer B, ~200 MB, stays here) with tests/image/gpu_run.sh, into CARRY:
#   layer-a.tar.gz   the layer's blob from IMAGE_DIR/oci, as a registry would serve it
#   config.json      the runtime configuration umoci derives from the image's (user, env, entrypoint)
#   runc, crun       this machine's runtimes, and lib/ with the shared libraries they need beyond
#                    glibc (runc: libseccomp.so.2 only; crun more)
#   mnist/           the four MNIST files, gzipped, for MNIST_BAKED_DATA's folder (no download)
set -euo pipefail
image_dir=$1 idx_dir=$2 carry=$3
version=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$image_dir/sizes.json")
rm -rf "$carry" && mkdir -p "$carry/lib" "$carry/mnist"
layer=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["images"][sys.argv[2]]["layers"][0]["digest"])' \
  "$image_dir/sizes.json" "$version")
cp "$image_dir/oci/blobs/sha256/${layer#sha256:}" "$carry/layer-a.tar.gz"
unpacked=$(mktemp -d)
trap 'rm -rf "$unpacked"' EXIT
umoci unpack --image "$image_dir/oci:$version" "$unpacked/bundle" >/dev/null
cp "$unpacked/bundle/config.json" "$carry/config.json"
for rt in runc crun; do
  bin=$(command -v "$rt") || continue
  cp "$bin" "$carry/$rt"
  # Everything but glibc's own libraries, which any Linux machine has.
  ldd "$bin" | sed -nE 's/.*=> (\/[^ ]+) .*/\1/p' | grep -vE '/(libc|libm|libdl|libpthread|librt|ld-linux[^/]*)\.so' |
    while read -r lib; do cp -L "$lib" "$carry/lib/"; done
done
for f in "$idx_dir"/*-ubyte; do gzip -9 -c "$f" >"$carry/mnist/$(basename "$f").gz"; done
du -sh "$carry"; ls -la "$carry" "$carry/lib"
