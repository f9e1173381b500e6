#!/usr/bin/env bash
# check_prereqs.sh REPO: scripts/check-prereqs.sh against fake CUDA installations: a missing or old
# toolkit and a missing NCCL are each one line naming the package to install, and exit 1; a complete one (also behind a wrapper nvcc, and this machine's, which
# builds the project) passes.
set -uo pipefail
script=$1/scripts/check-prereqs.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
# case NAME WANT_RC WANT_TEXT: runs the check with CUDACXX=$work/cuda/bin/nvcc.
case_() {
  local name=$1 want=$2 text=$3 out rc
  out=$(env CUDACXX="$work/cuda/bin/nvcc" CMAKE_PREFIX_PATH= "$script" 2>&1)
  rc=$?
  if [[ $rc == "$want" && $out == *"$text"* && $(wc -l <<<"$out") -le 3 ]]; then
    echo "ok   $name: exit $rc${out:+: $out}"
  else
    echo "FAIL $name: exit $rc (want $want), output: ${out:-(none)} (want: $text)"
    failures=$((failures + 1))
  fi
}
# A fake nvcc: its version, and (like the real one) its toolkit's root as TOP under --dryrun.
nvcc() {
  mkdir -p "$work/cuda/bin"
  printf '#!/bin/sh\ncase "$*" in *--dryrun*) echo "#\044 TOP=%s/cuda/bin/.." >&2 ;; *) echo "Cuda compilation tools, release %s, V%s.1" ;; esac\n' \
    "$work" "$1" "$1" >"$work/cuda/bin/nvcc"
  chmod +x "$work/cuda/bin/nvcc"
}
# Only /usr/local and /usr stay outside the fake toolkit: skip the missing-NCCL case if this machine
# has NCCL there (then a fake toolkit without it would still find it).
system_nccl=0
for d in /usr/include /usr/include/*-linux-gnu /usr/local/include; do
  [[ -f $d/nccl.h ]] && system_nccl=1
done

nvcc 12.4
case_ "CUDA 12 toolkit" 1 "cuda-toolkit-13-0"
nvcc 13.0
mkdir -p "$work/cuda/lib64" "$work/cuda/include"
if ((system_nccl == 0)); then
  case_ "CUDA 13 without NCCL" 1 "libnccl-dev"
  : >"$work/cuda/include/nccl.h"
  case_ "NCCL without libnccl.so" 1 "libnccl-dev"
  : >"$work/cuda/lib64/libnccl.so"
else
  echo "note: NCCL is installed under /usr here: the missing-NCCL cases cannot be faked"
fi
case_ "CUDA 13 and NCCL" 0 ""
# cuDNN is no prerequisite: a toolkit without it passes (the case above has none).
# nvcc on PATH as a wrapper script elsewhere (as /usr/local/bin/nvcc on some machines): the
# toolkit is where nvcc says it is (TOP), not the wrapper's folder.
mkdir -p "$work/wrapper"
printf '#!/bin/sh\nexec %s "$@"\n' "$work/cuda/bin/nvcc" >"$work/wrapper/nvcc"
chmod +x "$work/wrapper/nvcc"
out=$(env -u CUDACXX CMAKE_PREFIX_PATH= PATH="$work/wrapper:/usr/bin:/bin" "$script" 2>&1)
if [[ $? == 0 ]]; then
  echo "ok   nvcc through a wrapper script"
else
  echo "FAIL nvcc through a wrapper script: $out"
  failures=$((failures + 1))
fi
rm -rf "$work/cuda"
out=$(env -u CUDACXX PATH="/usr/bin:/bin" "$script" 2>&1)
rc=$?
if [[ -x /usr/local/cuda/bin/nvcc ]]; then
  [[ $rc == 0 ]] && echo "ok   this machine's toolkit (/usr/local/cuda) and NCCL" \
    || { echo "FAIL this machine builds the project, but the check says: $out"; failures=$((failures + 1)); }
else
  [[ $rc == 1 && $out == *"cuda-toolkit-13-0"* ]] && echo "ok   no toolkit here: $out" \
    || { echo "FAIL no nvcc here, but the check exited $rc: $out"; failures=$((failures + 1)); }
fi
exit $((failures > 0))
