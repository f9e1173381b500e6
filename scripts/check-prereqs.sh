#!/usr/bin/env bash
# Checks what scripts/install-deps.sh cannot install from the distribution's packages: NVIDIA's
# CUDA 13 toolkit (with cuBLASLt) and NCCL 2 (from NVIDIA's own repositories), which CMake needs to
# configure the build even on a machine without a GPU. Each missing piece is one line naming what to install;
# exit 1 if any is missing. Looks where CMake looks: nvcc from CUDACXX, PATH or /usr/local/cuda/bin;
# nccl.h and libnccl.so in that toolkit, the system's include and library folders, and
# CMAKE_PREFIX_PATH. -v prints what it found.
set -uo pipefail
verbose=0
[[ ${1:-} == -v ]] && verbose=1
missing=0
need() { echo "mnist-train: missing prerequisite: $*" >&2; missing=1; }
found() { ((verbose)) && echo "found $*"; return 0; }

# The CUDA toolkit, version 13 or newer.
nvcc=${CUDACXX:-}
[[ -z $nvcc ]] && nvcc=$(command -v nvcc || true)
[[ -z $nvcc && -x /usr/local/cuda/bin/nvcc ]] && nvcc=/usr/local/cuda/bin/nvcc
cuda_root=
if [[ -z $nvcc || ! -x $nvcc ]]; then
  need "the CUDA 13 toolkit: no nvcc on PATH or in /usr/local/cuda/bin; install NVIDIA's package cuda-toolkit-13-0 (https://developer.nvidia.com/cuda-downloads), or put its bin/ on PATH"
else
  release=$("$nvcc" --version 2>/dev/null | sed -n 's/.*release \([0-9][0-9]*\)\.\([0-9][0-9]*\).*/\1.\2/p')
  # The toolkit's root as nvcc itself reports it (TOP, as CMake reads it): nvcc on PATH may be a
  # wrapper script elsewhere (/usr/local/bin/nvcc exec'ing the real one), so its own folder may not be
  # the toolkit's.
  top=$("$nvcc" --dryrun -E -x cu /dev/null 2>&1 | sed -n 's/^#\$ TOP=//p' | head -n 1)
  [[ -n $top && -d $top ]] || top=$(dirname "$(readlink -f "$nvcc")")/..
  cuda_root=$(cd "$top" && pwd -P)
  if [[ -z $release ]]; then
    need "the CUDA 13 toolkit: $nvcc does not report its version (nvcc --version); reinstall NVIDIA's package cuda-toolkit-13-0"
  elif ((${release%%.*} < 13)); then
    need "the CUDA 13 toolkit: $nvcc is CUDA $release; install NVIDIA's package cuda-toolkit-13-0 and put its bin/ first on PATH"
  else
    found "CUDA $release: $nvcc"
  fi
fi

# Where CMake looks for NCCL's files: the toolkit, CMAKE_PREFIX_PATH, /usr/local, /usr.
case $(uname -m) in
  x86_64) multiarch=x86_64-linux-gnu ;;
  aarch64) multiarch=aarch64-linux-gnu ;;
  *) multiarch=$(uname -m)-linux-gnu ;;
esac
prefixes=()
[[ -n $cuda_root ]] && prefixes+=("$cuda_root" "$cuda_root"/targets/*-linux)
IFS=: read -ra extra <<<"${CMAKE_PREFIX_PATH:-}"
prefixes+=("${extra[@]}" /usr/local /usr)

# NCCL 2 (data-parallel training over several GPUs): its header and the unversioned link (the -dev
# part), which the build needs; the binary loads the library only when a run needs it.
nccl_header= nccl_library=
for p in "${prefixes[@]}"; do
  for d in "$p/include" "$p/include/$multiarch"; do
    [[ -z $nccl_header && -f $d/nccl.h ]] && nccl_header=$d/nccl.h
  done
  for d in "$p/lib64" "$p/lib" "$p/lib/$multiarch"; do
    [[ -z $nccl_library && -e $d/libnccl.so ]] && nccl_library=$d/libnccl.so
  done
done
if [[ -z $nccl_header || -z $nccl_library ]]; then
  need "NCCL 2: no nccl.h and libnccl.so in ${cuda_root:-the CUDA toolkit}, /usr/local or /usr; install NVIDIA's packages libnccl2 and libnccl-dev (https://developer.nvidia.com/nccl/nccl-download)"
else
  found "NCCL: $nccl_header, $nccl_library"
fi
exit $missing
