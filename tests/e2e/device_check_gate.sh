#!/usr/bin/env bash
# device_check_gate.sh DEVICE_CHECK: scripts/device-check.sh against fake build trees (a
# CTestTestfile.cmake of shell commands labelled gpu, stub binaries), no GPU needed. The gate
# passes only when every gpu-labelled test ran and passed: it fails on a failed test, on a test
# skipped either way CTest knows (SKIP_RETURN_CODE 77, SKIP_REGULAR_EXPRESSION for GTEST_SKIP), on
# a label with no tests, on a missing build, and on a failed stage (benchmark, sanitizer).
set -euo pipefail
gate=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# fake NAME TEST...: a build tree $work/NAME whose CTestTestfile.cmake holds one test per
# argument, "name:label:command", and whose mnist-train and tests/gpu_tests exit with
# $work/NAME/train_rc (default 0). A gtest-style skip prints "[  SKIPPED ]" (matched by the skip
# pattern the suite gives every GoogleTest binary).
fake() {
  local dir=$work/$1 t name label command
  shift
  mkdir -p "$dir/tests"
  : >"$dir/CTestTestfile.cmake"
  for t in "$@"; do
    IFS=: read -r name label command <<<"$t"
    printf 'add_test([=[%s]=] "/bin/sh" "-c" [=[%s]=])\n' "$name" "$command" >>"$dir/CTestTestfile.cmake"
    printf 'set_tests_properties([=[%s]=] PROPERTIES LABELS "%s" SKIP_RETURN_CODE 77 SKIP_REGULAR_EXPRESSION "  SKIPPED ")\n' \
      "$name" "$label" >>"$dir/CTestTestfile.cmake"
  done
  for bin in mnist-train tests/gpu_tests; do
    printf '#!/bin/sh\n[ -f %s/skip ] && echo "[  SKIPPED ] 1 test"\nexit $(cat %s/train_rc 2>/dev/null || echo 0)\n' \
      "$dir" "$dir" >"$dir/$bin"
    chmod +x "$dir/$bin"
  done
}

# A compute-sanitizer that runs the program it is given and exits with its status.
mkdir -p "$work/bin"
cat >"$work/bin/compute-sanitizer" <<'EOF'
#!/bin/sh
while [ "${1#-}" != "$1" ]; do shift 2; done
exec "$@"
EOF
chmod +x "$work/bin/compute-sanitizer"

# gate EXPECTED STAGES BUILD: runs the gate with nothing from the caller's environment but PATH.
gate() {
  local expected=$1 stages=$2 build=$3 rc=0
  env -i PATH="$work/bin:$PATH" HOME="$work" STAGES="$stages" BUILD="$build" OUT="$work/out" \
    bash "$gate" >"$work/log" 2>&1 || rc=$?
  local verdict
  verdict=$(tail -1 "$work/log")
  if [[ $expected == pass ]]; then
    (( rc == 0 )) && [[ $verdict == "device-check: PASSED" ]] ||
      { cat "$work/log"; fail "$build ($stages): exit $rc, expected 0 and PASSED"; }
  else
    (( rc != 0 )) && [[ $verdict == "device-check: FAILED ("*")" ]] ||
      { cat "$work/log"; fail "$build ($stages): exit $rc, expected non-zero and FAILED"; }
  fi
  echo "ok: $(basename "$build") ($stages): exit $rc, $verdict"
}

ok="a:gpu:exit 0" cpu_fails="c:cpu:exit 1"
fake passing "$ok" "b:gpu:echo '[  PASSED  ] 1 test.'" "$cpu_fails"
fake failing "$ok" "b:gpu:exit 1"
fake crashing "$ok" "b:gpu:kill -SEGV \$\$"
fake skipped_77 "$ok" "b:gpu:exit 77"
fake skipped_gtest "$ok" "b:gpu:echo '[  SKIPPED ] 1 test, listed below:'"
fake no_gpu_tests "$cpu_fails"
fake no_gpu_tests_binary "$ok"; rm "$work/no_gpu_tests_binary/tests/gpu_tests"
fake no_trainer "$ok"; rm "$work/no_trainer/mnist-train"
fake no_ctest_file "$ok"; rm "$work/no_ctest_file/CTestTestfile.cmake"
mkdir -p "$work/empty"
fake bench_fails "$ok"; echo 4 >"$work/bench_fails/train_rc"
fake sanitizer_finds "$ok"; echo 9 >"$work/sanitizer_finds/train_rc"
fake sanitizer_skips "$ok"; touch "$work/sanitizer_skips/skip"

gate pass test "$work/passing"
gate pass "test bench" "$work/passing"
gate pass sanitize "$work/passing"
gate fail test "$work/failing"
gate fail test "$work/crashing"
gate fail test "$work/skipped_77"
gate fail test "$work/skipped_gtest"
gate fail test "$work/no_gpu_tests"
gate fail test "$work/no_gpu_tests_binary"
gate fail test "$work/no_trainer"
gate fail test "$work/no_ctest_file"
gate fail test "$work/empty"
gate fail test "$work/nowhere"
gate fail "test bench" "$work/bench_fails"
grep -q "device-check: FAILED (bench)" "$work/log" || fail "the verdict does not name the bench stage"
gate fail sanitize "$work/sanitizer_finds"
gate fail sanitize "$work/sanitizer_skips"
echo "PASS: the gate fails on failed, crashed and skipped gpu tests, an empty label, a missing build and failed stages"
