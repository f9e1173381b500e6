#!/usr/bin/env bash
# libraries.sh TRAINER [gpu]: cuBLASLt and NCCL are loaded when used, never linked.
#   cpu (default)  `ldd` lists no vendor library (cuBLAS, cuBLASLt, cuDNN, NCCL), and the binary
#                  needs nothing beyond the C/C++ runtime, libcurl, zlib and OpenSSL; --backend
#                  cublas with cuBLASLt missing (or a file lacking its entry points) exits 2,
#                  reason library_missing, naming the library, before any GPU is looked at, with a
#                  termination line and a verdict that validate
#   gpu            with a GPU (else skip, 77): a run over two processes with NCCL missing, and
#                  --benchmark with cuBLASLt missing, exit 2 the same way before anything is
#                  downloaded; with every library present, NCCL loads (its unique id is made)
# MNIST_TEST_*_LIBRARY (src/gpu/libraries.h) names the file loaded instead of the library: a path
# that does not exist stands for a library this installation lacks.
set -uo pipefail
trainer=$1 mode=${2:-cpu}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/e2e/check_json.sh
source "$here/check_json.sh"
unset MNIST_MIRROR MNIST_BAKED_DATA NVIDIA_VISIBLE_DEVICES NODE_NAME MNIST_TEST_CUBLASLT_LIBRARY \
  MNIST_TEST_NCCL_LIBRARY
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# missing NAME SONAME ENV... -- ARGS...: with the environment given, the trainer exits 2 naming
# SONAME in one stderr line, reason library_missing in the verdict and the termination line, and
# nothing downloaded or trained.
missing() {
  local name=$1 soname=$2; shift 2
  local env=()
  while [[ $1 != -- ]]; do env+=("$1"); shift; done
  shift
  rm -f "$work/result.json"
  : >"$work/termination"  # the file must exist, as the kubelet's does
  env "${env[@]}" "$trainer" "$@" --data_dir "$work/data" --result_file "$work/result.json" \
    --termination_log "$work/termination" >"$work/out" 2>"$work/err"
  local got=$?
  if [[ $got != 2 ]]; then fail "$name: exit $got, expected 2"; cat "$work/out" "$work/err"; return; fi
  echo "ok   2  $name: $(tail -n1 "$work/err")"
  [[ $(grep -c . "$work/err") == 1 ]] || fail "$name: stderr is not one line: $(cat "$work/err")"
  grep -qF "$soname" "$work/err" || fail "$name: stderr does not name $soname"
  grep -qF "reason=library_missing" "$work/termination" ||
    fail "$name: termination line: $(cat "$work/termination" 2>/dev/null)"
  ! grep -qE 'Accuracy at step|Successfully downloaded|Extracting' "$work/out" ||
    fail "$name: the run started before failing"
  [[ ! -e $work/data ]] || fail "$name: the data folder was touched"
  check_json "$work/result.json" 'd["exit_code"] == 2' 'd["reason"] == "library_missing"' \
    'd["exit_name"] == "bad_arguments"'
  python3 "$here/../app/validate_verdict.py" "$work/result.json" >/dev/null ||
    fail "$name: the verdict does not validate"
}

if [[ $mode == cpu ]]; then
  # What the dynamic loader must find: direct dependencies (NEEDED) only from this list, and in the
  # whole closure no vendor library.
  # (libasan and libubsan: the asan preset's sanitizer runtimes, part of the compiler's.)
  allowed='^(libc|libm|libdl|librt|libpthread|libstdc\+\+|libgcc_s|libgomp|libasan|libubsan|libcurl|libz|libcrypto|libssl|ld-linux-x86-64)\.so'
  needed=$(readelf -d "$trainer" | sed -n 's/.*(NEEDED).*\[\(.*\)\].*/\1/p')
  [[ -n $needed ]] || fail "readelf found no NEEDED entries in $trainer"
  for lib in $needed; do
    [[ $lib =~ $allowed ]] || fail "$trainer needs $lib, beyond the C/C++ runtime, libcurl, zlib and OpenSSL"
  done
  echo "ok     NEEDED: $(echo $needed)"
  if closure=$(ldd "$trainer"); then
    vendor=$(grep -E 'lib(cublas|cublasLt|cudnn[a-z_]*|nccl)\.so' <<<"$closure")
    [[ -z $vendor ]] || fail "ldd lists vendor libraries: $vendor"
    echo "ok     ldd: $(grep -c '=>' <<<"$closure") libraries, none of cuBLAS, cuBLASLt, cuDNN, NCCL"
  else
    fail "ldd $trainer failed"
  fi

  cublas=(--backend cublas --max_steps 5)
  missing "cuBLASLt absent" libcublasLt.so.13 MNIST_TEST_CUBLASLT_LIBRARY=/nonexistent/libcublasLt.so.13 -- "${cublas[@]}"
  # A file that loads but is not cuBLASLt: the first missing entry point is named.
  missing "cuBLASLt without its entry points" libcublasLt.so.13 MNIST_TEST_CUBLASLT_LIBRARY=libz.so.1 -- "${cublas[@]}"
  grep -qF "no entry point cublasLtCreate" "$work/err" || fail "the missing entry point is not named: $(cat "$work/err")"
  # The cuda backend needs neither: with both absent it gets as far as the GPU (exit 4 without
  # one, which is this machine's case in CI; a GPU machine trains).
  MNIST_TEST_CUBLASLT_LIBRARY=/nonexistent MNIST_TEST_NCCL_LIBRARY=/nonexistent \
    "$trainer" --backend cuda --fake_data --max_steps 2 --log_dir "" --termination_log "" >"$work/out" 2>"$work/err"
  got=$?
  if grep -qF library_missing "$work/err" || grep -qiE 'cublas|cudnn|nccl' "$work/err"; then
    fail "--backend cuda touched a vendor library: $(cat "$work/err")"
  elif [[ $got != 0 && $got != 4 ]]; then
    fail "--backend cuda without the vendor libraries: exit $got"; cat "$work/err"
  else
    echo "ok   $got  --backend cuda without cuBLASLt and NCCL: $(tail -n1 "$work/err")"
  fi
else
  # shellcheck source=tests/e2e/gpu_present.sh
  source "$here/gpu_present.sh"
  gpu_present || { echo "SKIP: no NVIDIA GPU on this machine"; exit 77; }
  secret=$work/secret
  head -c 48 /dev/urandom >"$secret"
  missing "NCCL absent, two processes" libnccl.so.2 MNIST_TEST_NCCL_LIBRARY=/nonexistent/libnccl.so.2 \
    JOB_COMPLETION_INDEX=0 -- --backend cuda --world_size 2 --rendezvous 127.0.0.1:1 \
    --rendezvous_secret_file "$secret" --max_steps 5
  missing "cuBLASLt absent, benchmark" libcublasLt.so.13 MNIST_TEST_CUBLASLT_LIBRARY=/nonexistent/libcublasLt.so.13 \
    -- --benchmark --fake_data --benchmark_batches 100
fi

if ((failures)); then echo "$failures check(s) failed"; exit 1; fi
echo "all library checks passed"
