#!/usr/bin/env bash
# build-image.sh [--binary PATH] [--out DIR] [--node-check-only]: the trainer's OCI images, without
# a Docker daemon (docs/IMAGE.md). From a built mnist-train (default build/release/mnist-train) and
# this machine's Debian 12 files it writes the OCI image layout DIR/oci (default build/image/oci)
# with three tags that share their layers:
#   VERSION             the node check: A the binary, exactly its run-time library closure (ldd)
#                       and the glibc stubs the node's driver libraries link, passwd/group with
#                       user 65532, CA certificates, the loader's configuration; B NCCL
#                       (data-parallel training over several GPUs or processes)
#   VERSION-single-gpu  A alone: the node check of one GPU (the one-GPU Job of k8s/base)
#   VERSION-baseline    A, B and C: cuBLASLt (--backend cublas, --benchmark)
# VERSION is CMakeLists.txt's project(VERSION). The same inputs give the same digests: every time in
# layer A and the configuration is SOURCE_DATE_EPOCH (default: the last commit's time; layers B and
# C, which do not depend on the commit, are dated 0), entries are sorted, owners
# numeric; the revision label is IMAGE_REVISION (default: the commit, "-dirty" with uncommitted
# changes). Sizes (what a pull transfers, and unpacked), the digests, SOURCE_DATE_EPOCH, the
# revision and the binary's SHA-256 go to DIR/sizes.json, the sizes and digests to stdout too.
# --node-check-only leaves the baseline tag out (a quicker build, e.g. for the reproducibility test).
# --stage-only DIR writes the layers' trees to DIR/a, DIR/b, DIR/c instead (Dockerfile.gpu copies
# them into its images: the same files, owners and modes, from the build stage's distribution).
# Needs umoci, GNU tar, python3 and ldconfig (scripts/install-deps.sh); the NVIDIA libraries come
# from CUDA_LIB_DIR (default /usr/local/cuda/lib64).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
binary=$root/build/release/mnist-train
out=$root/build/image
baseline=1
stage=''
while (($#)); do
  case $1 in
    --binary) binary=${2:?--binary needs a path}; shift 2 ;;
    --out) out=${2:?--out needs a folder}; shift 2 ;;
    --node-check-only) baseline=0; shift ;;
    --stage-only) stage=${2:?--stage-only needs a folder}; shift 2 ;;
    *) echo "build-image.sh: unknown argument '$1' (--binary PATH, --out DIR, --node-check-only, --stage-only DIR)" >&2; exit 2 ;;
  esac
done
[[ -z $stage || ! -e $stage || -z $(ls -A "$stage") ]] || { echo "build-image.sh: --stage-only $stage: not an empty folder" >&2; exit 2; }
cuda_lib=${CUDA_LIB_DIR:-/usr/local/cuda/lib64}
tools=(ldconfig ldd dpkg-query)
[[ -n $stage ]] || tools+=(umoci tar python3)
for tool in "${tools[@]}"; do
  command -v "$tool" >/dev/null || { echo "build-image.sh: $tool not found (scripts/install-deps.sh installs it)" >&2; exit 2; }
done
[[ $(id -u) == 0 ]] || { echo "build-image.sh: run as root: the layers' files are owned by root and 65532" >&2; exit 2; }
[[ -x $binary ]] || { echo "build-image.sh: no executable at $binary (cmake --preset release && cmake --build --preset release)" >&2; exit 2; }
binary=$(readlink -f "$binary")

version=$(sed -nE 's/^project\([^)]*VERSION ([0-9]+\.[0-9]+\.[0-9]+).*/\1/p' "$root/CMakeLists.txt")
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "build-image.sh: no project(VERSION) in CMakeLists.txt" >&2; exit 1; }
if [[ -z ${SOURCE_DATE_EPOCH:-} ]]; then
  # A Docker build context has no .git (.dockerignore): its trees get 0 unless the build sets it.
  SOURCE_DATE_EPOCH=$(git -C "$root" log -1 --format=%ct 2>/dev/null) || SOURCE_DATE_EPOCH=
  [[ -n $SOURCE_DATE_EPOCH || -z $stage ]] || SOURCE_DATE_EPOCH=0
  [[ -n $SOURCE_DATE_EPOCH ]] || { echo "build-image.sh: not a git checkout: set SOURCE_DATE_EPOCH" >&2; exit 2; }
fi
[[ $SOURCE_DATE_EPOCH =~ ^[0-9]+$ ]] || { echo "build-image.sh: SOURCE_DATE_EPOCH '$SOURCE_DATE_EPOCH' is not a number" >&2; exit 2; }
epoch=$SOURCE_DATE_EPOCH
created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)
if [[ -z ${IMAGE_REVISION:-} ]]; then
  IMAGE_REVISION=$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)
  # A binary built from uncommitted changes is not that commit's: say so.
  [[ $IMAGE_REVISION == unknown || -z $(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null) ]] ||
    IMAGE_REVISION+=-dirty
fi
revision=$IMAGE_REVISION
# Only a URL given on purpose: a clone's remote may embed credentials, and differs between clones.
source_url=${IMAGE_SOURCE:-}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/a" "$work/b" "$work/c"

# copy_in DEST PATH: PATH from this machine into the tree DEST at the same place, with every
# symlink on the way (Debian's /lib -> usr/lib, the sonames' links) recreated as a symlink, so the
# image resolves the name exactly as this machine does.
copy_in() {
  local dest=$1 path prefix="" here target rest i
  path=$(realpath -m -s "$2")
  local -a parts
  IFS=/ read -ra parts <<<"${path#/}"
  for ((i = 0; i < ${#parts[@]}; i++)); do
    here=$prefix/${parts[i]}
    if [[ -L $here ]]; then
      target=$(readlink "$here")
      [[ -L $dest$here || -e $dest$here ]] || ln -s "$target" "$dest$here"
      [[ $target == /* ]] || target=$prefix/$target
      rest=$(IFS=/; echo "${parts[*]:i+1}")
      copy_in "$dest" "$target${rest:+/$rest}"
      return
    elif ((i == ${#parts[@]} - 1)); then
      [[ -f $here ]] || { echo "build-image.sh: $here is not a regular file" >&2; exit 1; }
      [[ -e $dest$here ]] || cp "$here" "$dest$here"
    else
      mkdir -p "$dest$here"
    fi
    prefix=$here
  done
}

# Debian packages whose files a layer holds: their dpkg status and copyright go in with them
# (/var/lib/dpkg/status.d, as distroless images do), so scanners and licence checks see them.
declare -A packaged=() in_image=()
package_of() {  # PATH: the package dpkg lists it in (merged /usr: under /lib or /usr/lib); none: ""
  local p=$1 alias=/usr$1
  [[ $p == /usr/* ]] && alias=${p#/usr}
  { dpkg-query -S "$p" 2>/dev/null || dpkg-query -S "$alias" 2>/dev/null || true; } | sed -n '1s/: .*//p'
}
add_package() {  # TREE PACKAGE
  local name=${2%%:*}
  [[ -n ${packaged[$name]:-} ]] && return
  packaged[$name]=1
  mkdir -p "$1/var/lib/dpkg/status.d"
  dpkg-query -s "$2" >"$1/var/lib/dpkg/status.d/$name"
  [[ ! -f /usr/share/doc/$name/copyright ]] || copy_in "$1" "/usr/share/doc/$name/copyright"
}

# add_closure TREE ELF...: into TREE, the Debian libraries that ELF... need (ldd) and no layer
# below holds. cuBLAS(Lt), cuDNN and NCCL are never taken from ldd (each image adds them on purpose;
# the binary dlopens them when a run needs them); the NVIDIA driver's libraries come from the node.
nvidia='/(libcublas|libcublasLt|libcudnn[a-z_]*|libnccl|libcuda|libnvidia-[a-z-]+)\.so'
add_closure() {
  local tree=$1 closure lib pkg
  shift
  closure=$(LC_ALL=C ldd "$@") || { echo "build-image.sh: ldd $* failed" >&2; exit 1; }
  if grep -q 'not found' <<<"$closure"; then
    echo "build-image.sh: $* need libraries this machine lacks:" >&2
    grep 'not found' <<<"$closure" >&2
    exit 1
  fi
  while read -r lib; do
    [[ $lib =~ $nvidia || -n ${in_image[$lib]:-} ]] && continue
    case $lib in
      /lib/*|/lib64/*|/usr/lib/*|/usr/lib64/*) ;;
      *) echo "build-image.sh: $lib is not one of Debian's files (/lib, /usr/lib): refusing to put it in the image" >&2; exit 1 ;;
    esac
    copy_in "$tree" "$lib"
    in_image[$lib]=1
    pkg=$(package_of "$lib")
    [[ -n $pkg ]] || { echo "build-image.sh: no Debian package owns $lib" >&2; exit 1; }
    add_package "$tree" "$pkg"
  done < <(sed -nE 's/.*=> (\/[^ ]+) \(0x.*/\1/p; s/^[[:space:]]*(\/[^ ]+) \(0x.*/\1/p' <<<"$closure" | LC_ALL=C sort -u)
}

# ---- layer A: the binary and its run-time closure ----
a=$work/a
install -D -m 0755 "$binary" "$a/usr/local/bin/mnist-train"
add_closure "$a" "$binary"
# The driver's libraries that the node injects (libcuda.so.1, libnvidia-ml.so.1: the NVIDIA
# container toolkit, or GKE's device plugin) link glibc's libdl, libpthread and librt, which the
# trainer itself does not: without them CUDA reports "insufficient driver".
for lib in /lib/x86_64-linux-gnu/libdl.so.2 /lib/x86_64-linux-gnu/libpthread.so.0 /lib/x86_64-linux-gnu/librt.so.1; do
  [[ -n ${in_image[$lib]:-} ]] && continue
  copy_in "$a" "$lib"
  in_image[$lib]=1
done
add_package "$a" libc6
# libcurl's default CA bundle (Debian's ca-certificates).
copy_in "$a" /etc/ssl/certs/ca-certificates.crt
add_package "$a" ca-certificates

mkdir -p "$a/etc/ld.so.conf.d"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin\n' >"$a/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$a/etc/group"
printf 'include /etc/ld.so.conf.d/*.conf\n' >"$a/etc/ld.so.conf"
printf '# Multiarch support\n/usr/local/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu\n/usr/lib/x86_64-linux-gnu\n' \
  >"$a/etc/ld.so.conf.d/x86_64-linux-gnu.conf"
# Where GKE's device plugin mounts the driver's libraries; the NVIDIA container toolkit injects them
# into /usr/lib/x86_64-linux-gnu instead (searched by default) and runs ldconfig, which reads this.
printf '/usr/local/nvidia/lib64\n/usr/local/nvidia/lib\n' >"$a/etc/ld.so.conf.d/000-nvidia.conf"
# The Job mounts an emptyDir on /tmp/tensorflow (--data_dir, --log_dir); without one (docker run)
# these folders, owned by the image's user, take the writes. /opt/mnist-data: MNIST_BAKED_DATA's
# mount point (a volume of the four .gz files for air-gapped clusters).
mkdir -p "$a/tmp/tensorflow/input_data" "$a/tmp/tensorflow/logs" "$a/opt/mnist-data"

# ---- layer B: NCCL; layer C: cuBLASLt, the baseline backend's one vendor library ----
# The sonames go where Debian's packages of them put them, which the loader searches by default.
# add_nvidia DEST PATTERN...: the files matching each PATTERN in the first of CUDA_LIB_DIR and
# /usr/lib/x86_64-linux-gnu (NVIDIA's Debian packages) that has any, with their licence.
add_nvidia() {
  local dest=$1 pattern f real dir dist lic pkg
  shift
  for pattern in "$@"; do
    local -a hits=()
    for dir in "$cuda_lib" /usr/lib/x86_64-linux-gnu; do
      for f in "$dir"/$pattern; do [[ -e $f ]] && hits+=("$f"); done
      ((${#hits[@]})) && break
    done
    ((${#hits[@]})) || { echo "build-image.sh: no $pattern in $cuda_lib or /usr/lib/x86_64-linux-gnu (CUDA_LIB_DIR: the toolkit's libraries)" >&2; exit 2; }
    for f in "${hits[@]}"; do
      real=$(readlink -f "$f")
      install -D -m 0644 "$real" "$dest/usr/lib/x86_64-linux-gnu/$(basename "$f")"
      # The redistribution licence: the Debian package's, or the toolkit wheel's (dist-info).
      pkg=$(package_of "$f")
      [[ -n $pkg ]] || pkg=$(package_of "$real")
      if [[ -n $pkg ]]; then add_package "$dest" "$pkg"; continue; fi
      for dist in "$(dirname "$real")"/../dist-info/*/RECORD; do
        { [[ -f $dist ]] && grep -q "/$(basename "$f")," "$dist"; } || continue
        dist=$(dirname "$dist")
        for lic in "$dist"/licenses/*; do
          [[ ! -f $lic ]] || install -D -m 0644 "$lic" "$dest/usr/share/doc/$(basename "$dist" .dist-info)/$(basename "$lic")"
        done
      done
    done
  done
}
# Each layer also holds what its libraries need beyond the layers below (glibc's librt, libdl and
# libpthread stubs, which the trainer itself does not link).
add_nvidia "$work/b" libnccl.so.2
add_closure "$work/b" "$work/b/usr/lib/x86_64-linux-gnu/"lib*.so*
if ((baseline)); then
  add_nvidia "$work/c" libcublasLt.so.13
  add_closure "$work/c" "$work/c/usr/lib/x86_64-linux-gnu/"lib*.so*
fi

# The loader's cache, from layer A's libraries (ldconfig -X: the links are as copied).
ldconfig -X -r "$a" 2> >(grep -v "Can't stat" >&2 || true)
rm -rf "$a/var/cache/ldconfig"

# Normalised metadata: root-owned, 0755 folders and executables, 0644 other files, /tmp 1777, the
# /tmp/tensorflow tree the image's user's; every time SOURCE_DATE_EPOCH.
for tree in "$work/a" "$work/b" "$work/c"; do
  find "$tree" -mindepth 1 -type d -exec chmod 0755 {} +
  find "$tree" -type f -perm /111 -exec chmod 0755 {} +
  find "$tree" -type f ! -perm /111 -exec chmod 0644 {} +
  chown -R -h 0:0 "$tree"
done
chmod 1777 "$a/tmp"
chown -R 65532:65532 "$a/tmp/tensorflow"

# Dockerfile.gpu takes the three trees as they are and copies them into its images.
if [[ -n $stage ]]; then
  for tree in "$work/a" "$work/b" "$work/c"; do find "$tree" -exec touch -h -d "@$epoch" {} +; done
  mkdir -p "$stage"
  mv "$work/a" "$work/b" "$stage/"
  ((baseline)) && mv "$work/c" "$stage/"
  echo "layer trees in $stage: $(cd "$stage" && echo *)"
  exit 0
fi

# make_layer TREE TAR TIME: an uncompressed layer of TREE, entries sorted, every time TIME.
make_layer() {
  (cd "$1" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort) >"$2.list"
  tar -C "$1" --create --file "$2" --no-recursion --verbatim-files-from --files-from "$2.list" \
    --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    --mtime="@$3" --numeric-owner
}
make_layer "$work/a" "$work/a.tar" "$epoch"
# NCCL's and cuBLASLt's layers do not depend on the commit: a fixed time keeps their digests from
# build to build, so a node that pulled them once does not pull them again for a new trainer.
make_layer "$work/b" "$work/b.tar" 0
((baseline)) && make_layer "$work/c" "$work/c.tar" 0

# ---- the OCI layout ----
layout=$out/oci
# Only an earlier layout is replaced.
[[ ! -e $layout || -f $layout/oci-layout ]] || { echo "build-image.sh: $layout exists and is no OCI layout: not replacing it" >&2; exit 2; }
rm -rf "$layout"
mkdir -p "$out"
umoci init --layout "$layout"
umoci new --image "$layout:$version"
labels=(--config.label "org.opencontainers.image.version=$version"
        --config.label "org.opencontainers.image.revision=$revision"
        --config.label "org.opencontainers.image.title=mnist-train"
        --config.label "org.opencontainers.image.created=$created")
[[ -n $source_url ]] && labels+=(--config.label "org.opencontainers.image.source=$source_url")
# NVIDIA_VISIBLE_DEVICES is left to the runtime: the device plugin sets it to the GPUs a pod was
# given; an image default of "all" would hand every GPU to a container that asked for none.
umoci config --image "$layout:$version" --no-history --created "$created" --os linux --architecture amd64 \
  --config.user 65532:65532 --config.entrypoint /usr/local/bin/mnist-train --config.workingdir /tmp/tensorflow \
  --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --config.env LD_LIBRARY_PATH=/usr/local/nvidia/lib64:/usr/local/nvidia/lib \
  --config.env NVIDIA_DRIVER_CAPABILITIES=compute,utility \
  --config.env MNIST_BAKED_DATA=/opt/mnist-data \
  "${labels[@]}"
add_layer() {  # TAR TAG [NEW_TAG] WHAT
  local tar=$1 tag=$2 new=$3 what=$4
  umoci raw add-layer --image "$layout:$tag" ${new:+--tag "$new"} --history.created "$created" \
    --history.created_by "scripts/build-image.sh: $what" "$tar"
}
add_layer "$work/a.tar" "$version" "" "mnist-train and its run-time libraries (Debian 12)"
# The single-GPU node check: layer A alone. A run on one GPU never loads NCCL (the one-GPU Job of
# k8s/base); a run over several GPUs in it exits 2, library_missing.
umoci tag --image "$layout:$version" "$version-single-gpu"
add_layer "$work/b.tar" "$version" "" "NCCL"
((baseline)) && add_layer "$work/c.tar" "$version" "$version-baseline" "cuBLASLt"
umoci gc --layout "$layout"

# ---- sizes: what a pull transfers (manifest, config, layers) and the unpacked layers ----
tags=("$version" "$version-single-gpu")
((baseline)) && tags+=("$version-baseline")
declare -A unpacked=()
for t in a b c; do [[ -f $work/$t.tar ]] && unpacked[$t]=$(stat -c %s "$work/$t.tar"); done
binary_sha256=$(sha256sum "$work/a/usr/local/bin/mnist-train" | cut -d' ' -f1)
python3 - "$layout" "$out/sizes.json" "$version" "$epoch" "$revision" "$binary_sha256" "${unpacked[a]}" "${unpacked[b]}" "${unpacked[c]:-0}" "${tags[@]}" <<'PY'
import json, os, sys
layout, out, version, epoch, revision, binary_sha256, ua, ub, uc, *tags = sys.argv[1:]
blob = lambda d: os.path.join(layout, "blobs", *d.split(":", 1))
index = json.load(open(os.path.join(layout, "index.json")))
what = ["layer A: mnist-train and its run-time libraries", "layer B: NCCL", "layer C: cuBLASLt"]
unpacked = [int(ua), int(ub), int(uc)]
images = {}
for m in index["manifests"]:
    tag = m.get("annotations", {}).get("org.opencontainers.image.ref.name")
    if tag not in tags:
        continue
    manifest = json.load(open(blob(m["digest"])))
    layers = [{"what": what[i], "digest": l["digest"], "compressed_bytes": l["size"],
               "unpacked_bytes": unpacked[i]} for i, l in enumerate(manifest["layers"])]
    images[tag] = {"manifest_digest": m["digest"],
                   "compressed_bytes": m["size"] + manifest["config"]["size"] + sum(l["compressed_bytes"] for l in layers),
                   "unpacked_bytes": sum(l["unpacked_bytes"] for l in layers), "layers": layers}
json.dump({"version": version, "source_date_epoch": int(epoch), "revision": revision,
           "binary_sha256": binary_sha256, "images": images}, open(out, "w"), indent=2)
open(out, "a").write("\n")
for tag, i in images.items():
    print(f"{tag:18} {i['manifest_digest']}  pull {i['compressed_bytes'] / 1e6:7.1f} MB  unpacked {i['unpacked_bytes'] / 1e6:7.1f} MB")
    for l in i["layers"]:
        print(f"  {l['what']:48} {l['compressed_bytes'] / 1e6:7.1f} MB gzip  {l['unpacked_bytes'] / 1e6:7.1f} MB")
PY
echo "OCI layout: $layout (tags: ${tags[*]}); sizes: $out/sizes.json"
