#!/usr/bin/env bash
# run-image.sh [OPTIONS] IMAGE [-- ARGS...]: runs the trainer's image (scripts/build-image.sh) with an
# OCI runtime, as a Kubernetes Job's pod runs it: as the image's user (65532), on a read-only root,
# with a writable folder on /tmp/tensorflow (the Job's emptyDir) and a file on /dev/termination-log.
# ARGS follow the image's entrypoint (the Job's `args`). Exits with the trainer's exit code.
#   IMAGE                 oci:LAYOUT:TAG (unpacked with umoci into a temporary bundle), or an OCI
#                         bundle folder (config.json and rootfs/, e.g. from `umoci unpack`): its
#                         config.json is never changed (the run's is a copy), but the runtime creates
#                         the mount points it lacks in its rootfs (e.g. usr/local/nvidia/lib64)
#   --runtime PATH|NAME   the OCI runtime (default: runc, else crun, from PATH); a binary brought
#                         along works (Debian 12's runc needs glibc 2.34 and libseccomp.so.2)
#   --runtime-libs DIR    a folder of shared libraries for the runtime alone (LD_LIBRARY_PATH)
#   --work DIR            the folder on /tmp/tensorflow (default: a temporary one, removed at exit);
#                         it is given to the image's user, as the Job's fsGroup does
#   --termination-log F   the file on /dev/termination-log (default: a temporary one)
#   --mount SRC:DST[:rw]  an extra bind mount, read-only unless :rw (e.g. a data folder)
#   --env NAME=VALUE      an extra environment variable (e.g. NODE_NAME)
#   --entrypoint PATH     another program of the image instead of its entrypoint (e.g. its loader,
#                         /lib64/ld-linux-x86-64.so.2 --list LIBRARY, as ldd would run it)
#   --gpus                every /dev/nvidia* device and the driver's user-space libraries (found with
#                         ldconfig -p, else in /usr/lib/x86_64-linux-gnu, /usr/lib64 or
#                         /usr/local/nvidia/lib64, or in --driver-libs DIR), read-only on /usr/local/nvidia/lib64,
#                         as GKE's device plugin and the NVIDIA container toolkit provide them
#   --gpu-devices bind    the devices as bind mounts instead of created nodes (where mknod is refused)
#   --host-network        no network namespace of its own (where creating one is refused)
# Needs python3 (and umoci for oci: images). Runtimes: runc works in this project's CI container;
# crun refuses hybrid cgroup hierarchies (v1 and v2 at once), which some CI hosts have.
set -euo pipefail
runtime='' runtime_libs='' work='' termlog='' gpus=0 host_network=0 device_mode=create driver_libs='' image='' entrypoint=''
mounts=() envs=()
usage() { echo "usage: run-image.sh [--runtime PATH [--runtime-libs DIR]] [--entrypoint PATH] [--work DIR] [--termination-log FILE] [--mount SRC:DST[:rw]]... [--env N=V]... [--gpus [--gpu-devices bind] [--driver-libs DIR]] [--host-network] IMAGE [-- ARGS...]" >&2; exit 2; }
while (($#)); do
  case $1 in
    --runtime|--runtime-libs|--work|--termination-log|--mount|--env|--entrypoint|--gpu-devices|--driver-libs)
      (($# >= 2)) || usage ;;&
    --runtime) runtime=${2:?}; shift 2 ;;
    --runtime-libs) runtime_libs=$(cd "${2:?}" && pwd); shift 2 ;;
    --work) work=${2:?}; shift 2 ;;
    --termination-log) termlog=${2:?}; shift 2 ;;
    --mount) mounts+=("${2:?}"); shift 2 ;;
    --env) envs+=("${2:?}"); shift 2 ;;
    --entrypoint) entrypoint=${2:?}; shift 2 ;;
    --gpus) gpus=1; shift ;;
    --host-network) host_network=1; shift ;;
    --gpu-devices) device_mode=${2:?}; [[ $device_mode == bind || $device_mode == create ]] || usage; shift 2 ;;
    --driver-libs) driver_libs=${2:?}; shift 2 ;;
    --) shift; break ;;
    -*) echo "run-image.sh: unknown option '$1'" >&2; usage ;;
    *) [[ -z $image ]] || usage; image=$1; shift ;;
  esac
done
[[ -n $image ]] || usage
if [[ -z $runtime ]]; then
  runtime=$(command -v runc || command -v crun || true)
  [[ -n $runtime ]] || { echo "run-image.sh: no OCI runtime: install runc or crun (scripts/install-deps.sh), or pass --runtime PATH" >&2; exit 127; }
elif [[ $runtime != */* ]]; then
  runtime=$(command -v "$runtime") || { echo "run-image.sh: runtime '$runtime' not found" >&2; exit 127; }
fi
[[ -x $runtime ]] || { echo "run-image.sh: $runtime is not executable" >&2; exit 127; }

# rt ARGS...: the runtime, with --runtime-libs' libraries.
rt() { LD_LIBRARY_PATH=${runtime_libs:-${LD_LIBRARY_PATH:-}} "$runtime" "$@"; }
tmp=$(mktemp -d)
state=$tmp/state
id=mnist-train-$$-$RANDOM
# shellcheck disable=SC2317  # run by the trap
cleanup() {
  rt --root "$state" delete --force "$id" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

if [[ $image == oci:* ]]; then
  command -v umoci >/dev/null || { echo "run-image.sh: umoci not found: needed to unpack $image" >&2; exit 127; }
  umoci unpack --image "${image#oci:}" "$tmp/unpacked" >/dev/null
  bundle=$tmp/unpacked
else
  bundle=$image
fi
[[ -f $bundle/config.json && -d $bundle/rootfs ]] || { echo "run-image.sh: $bundle is not an OCI bundle (config.json, rootfs/)" >&2; exit 2; }
bundle=$(cd "$bundle" && pwd)

if [[ -z $work ]]; then work=$tmp/work; fi
mkdir -p "$work"
if [[ -z $termlog ]]; then termlog=$tmp/termination-log; fi
: >"$termlog"  # the kubelet gives each container a fresh, empty file

# The driver's user-space libraries, as the NVIDIA container toolkit picks them for
# NVIDIA_DRIVER_CAPABILITIES=compute,utility, and the libnvidia-* libraries they need.
driver_libraries() {
  local name path soname arch
  local -a found=()
  for name in libcuda.so.1 libnvidia-ml.so.1 libnvidia-ptxjitcompiler.so.1 'libnvidia-nvvm.so.[0-9]*' 'libnvidia-gpucomp.so.[0-9]*'; do
    if [[ -n $driver_libs ]]; then
      for path in "$driver_libs"/$name; do [[ -e $path ]] && found+=("$path"); done
    else
      # ldconfig -p: "	libcuda.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcuda.so.1"
      while read -r soname arch _ path; do
        # shellcheck disable=SC2053  # $name is a pattern
        [[ $arch == *x86-64* && $soname == $name ]] && found+=("$path")
      done < <(ldconfig -p | tail -n +2)
    fi
  done
  # Not in the loader's cache: where drivers are installed, or mounted (GKE).
  if ((${#found[@]} == 0)) && [[ -z $driver_libs ]]; then
    for driver_libs in /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/local/nvidia/lib64; do
      [[ -e $driver_libs/libcuda.so.1 ]] && { driver_libraries; return; }
    done
  fi
  ((${#found[@]})) || { echo "run-image.sh: --gpus: no NVIDIA driver libraries found (ldconfig -p; or --driver-libs DIR)" >&2; exit 4; }
  printf '%s\n' "${found[@]}" | sort -u
}
devices=() libraries=()
if ((gpus)); then
  for d in /dev/nvidia[0-9]* /dev/nvidiactl /dev/nvidia-uvm /dev/nvidia-uvm-tools /dev/nvidia-modeset /dev/nvidia-caps/*; do
    [[ -c $d ]] && devices+=("$d")
  done
  ((${#devices[@]})) || { echo "run-image.sh: --gpus: no /dev/nvidia* devices on this machine" >&2; exit 4; }
  mapfile -t libraries < <(driver_libraries)
  ((${#libraries[@]})) || exit 4  # driver_libraries said why
  echo "run-image.sh: GPUs: ${devices[*]}; driver libraries: ${libraries[*]}" >&2
fi

# The run's config: the bundle's, with the Job's settings on top.
mkdir -p "$tmp/run"
python3 - "$bundle" "$tmp/run/config.json" "$work" "$termlog" "$device_mode" "$entrypoint" "$host_network" \
  "${#mounts[@]}" "${mounts[@]}" "${#envs[@]}" "${envs[@]}" "${#devices[@]}" "${devices[@]}" \
  "${#libraries[@]}" "${libraries[@]}" -- "$@" <<'PY'
import json, os, stat, sys
bundle, out, work, termlog, device_mode, entrypoint, host_network, *rest = sys.argv[1:]
def take(rest):
    n = int(rest[0])
    return rest[1:1 + n], rest[1 + n:]
mounts, rest = take(rest)
envs, rest = take(rest)
devices, rest = take(rest)
libraries, rest = take(rest)
args = rest[1:]  # after "--"
c = json.load(open(os.path.join(bundle, "config.json")))
p = c["process"]
p["terminal"] = False
# The Job drops every capability (k8s/base/job.yaml): so does this run.
p["capabilities"] = {k: [] for k in ("bounding", "effective", "inheritable", "permitted", "ambient")}
p["args"] = ([entrypoint] if entrypoint else p["args"]) + args
names = {e.split("=", 1)[0] for e in envs}
p["env"] = [e for e in p.get("env", []) if e.split("=", 1)[0] not in names and not e.startswith("TERM=")] + envs
c["root"] = {"path": os.path.join(bundle, "rootfs"), "readonly": True}
# A cgroup mount is refused where this runs inside a container of a hybrid hierarchy; the trainer
# never reads it.
c["mounts"] = [m for m in c["mounts"] if m["destination"] != "/sys/fs/cgroup"]
bind = lambda src, dst, ro: {"destination": dst, "type": "bind", "source": src,
                             "options": ["rbind", "nosuid", "nodev"] + (["ro"] if ro else ["rw"])}
c["mounts"].append(bind(os.path.abspath(work), "/tmp/tensorflow", False))
c["mounts"].append(bind(os.path.abspath(termlog), "/dev/termination-log", False))
for m in mounts:
    parts = m.split(":")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("ro", "rw")) or not parts[1].startswith("/"):
        sys.exit(f"run-image.sh: --mount {m}: expected SRC:DST[:ro|rw], DST absolute")
    c["mounts"].append(bind(os.path.abspath(parts[0]), parts[1], len(parts) == 2 or parts[2] == "ro"))
linux = c.setdefault("linux", {})
if host_network == "1":
    linux["namespaces"] = [n for n in linux.get("namespaces", []) if n["type"] != "network"]
rules = linux.setdefault("resources", {}).setdefault("devices", [{"allow": False, "access": "rwm"}])
for d in devices:
    st = os.stat(d)
    major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
    rules.append({"allow": True, "type": "c", "major": major, "minor": minor, "access": "rw"})
    if device_mode == "bind":
        c["mounts"].append({"destination": d, "type": "bind", "source": d, "options": ["rbind", "nosuid", "rw"]})
    else:
        linux.setdefault("devices", []).append({"path": d, "type": "c", "major": major, "minor": minor,
                                                "fileMode": stat.S_IMODE(st.st_mode), "uid": 0, "gid": 0})
mounted = set()
for lib in libraries:
    name = os.path.basename(lib)
    # A library found twice (ldconfig's cache and a GKE-style folder): the first one found.
    if name in mounted:
        continue
    mounted.add(name)
    # ldconfig -p names the soname (a link); the mount takes the file it points at.
    c["mounts"].append(bind(os.path.realpath(lib), "/usr/local/nvidia/lib64/" + name, True))
json.dump(c, open(out, "w"), indent=1)
PY

# The image's user owns the work folder and the termination log, as fsGroup and the kubelet arrange.
read -r uid gid < <(python3 -c 'import json,sys; u=json.load(open(sys.argv[1]))["process"]["user"]; print(u["uid"], u["gid"])' "$tmp/run/config.json")
chown "$uid:$gid" "$work" "$termlog"

flags=(--root "$state")
[[ $(basename "$runtime") == crun* ]] && flags+=(--cgroup-manager=disabled)
rc=0
rt "${flags[@]}" run --bundle "$tmp/run" "$id" || rc=$?
exit "$rc"
