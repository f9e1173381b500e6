#!/usr/bin/env bash
# benchmark_cpu.sh TRAINER: --benchmark works without a GPU, labels itself CPU, writes its JSON.
set -euo pipefail
trainer=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$trainer" --benchmark --fake_data --backend cpu --benchmark_batches 50,120 --benchmark_steps 3 \
  --benchmark_out "$work/bench.json" | tee "$work/out"
fail() { echo "FAIL: $*"; exit 1; }
grep -Eq '^cpu +CPU +50 ' "$work/out" || fail "no CPU row for batch 50"
grep -Eq '^cpu +CPU +120 ' "$work/out" || fail "no CPU row for batch 120"
grep -q '== seed job' "$work/out" || fail "no seed job"
grep -q 'time to 98%' "$work/out" || fail "no time to 98%"
for key in '"images_per_s"' '"median_us"' '"p90_us"' '"seed_job"' '"time_to_98"' '"device": "CPU'; do
  grep -q "$key" "$work/bench.json" || fail "JSON lacks $key"
done
echo "PASS: CPU benchmark"
