#!/usr/bin/env bash
# benchmark_cpu.sh TRAINER: --benchmark works without a GPU, labels itself CPU, writes its JSON
# (naming the program's version), times the seed job with and without summaries (a temporary
# --log_dir, removed afterwards; skipped with the reason when none can be made), and leaves a
# verdict (--result_file) and a termination message.
set -euo pipefail
trainer=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
version=$("$trainer" --version | awk '{print $2}')
mkdir "$work/tmp"
: >"$work/termination"
TMPDIR="$work/tmp" "$trainer" --benchmark --fake_data --backend cpu --benchmark_batches 50,120 --benchmark_steps 3 \
  --benchmark_out "$work/bench.json" --result_file "$work/verdict.json" \
  --termination_log "$work/termination" | tee "$work/out"
grep -q "^== mnist-train $version on the CPU (no GPU visible)\$" "$work/out" || fail "no header naming the version"
grep -Eq '^cpu +CPU +fp32 +- +50 ' "$work/out" || fail "no CPU row for batch 50"
grep -Eq '^cpu +CPU +fp32 +- +120 ' "$work/out" || fail "no CPU row for batch 120"
grep -q '== evaluation alone' "$work/out" || fail "no evaluation timed alone"
grep -Eq '^cpu +fp32 +[0-9.]+ us +[0-9]+ images/s   accuracy [0-9.]+$' "$work/out" ||
  fail "no CPU evaluation row"
grep -q '== seed job' "$work/out" || fail "no seed job"
grep -Eq '^cpu +[0-9.]+ ms   final accuracy ' "$work/out" || fail "no seed job row"
grep -q '== seed job with summaries' "$work/out" || fail "no seed job with summaries"
grep -Eq '^cpu +[0-9.]+ ms without, +[0-9.]+ ms with summaries: [0-9.]+x$' "$work/out" || fail "no summaries row"
grep -q 'time to 98%' "$work/out" || fail "no time to 98%"
for key in '"images_per_s"' '"min_us"' '"median_us"' '"p90_us"' '"seed_job"' '"time_to_98"' '"evaluation"' '"device": "CPU' \
  "\"version\": \"$version\"" '"program": "mnist-train"' '"ms_with_summaries"' '"summaries_ratio"'; do
  grep -q "$key" "$work/bench.json" || fail "JSON lacks $key"
done
python3 - "$work/bench.json" "$work/verdict.json" <<'PY' || fail "JSON content"
import json, re, sys
b = json.load(open(sys.argv[1]))
assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", b["timestamp"]), b["timestamp"]
assert b["host"] and b["node"], (b["host"], b["node"])
row = b["seed_job"][0]
assert row["backend"] == "cpu" and row["ms"] > 0 and row["ms_with_summaries"] > 0, row
assert abs(row["summaries_ratio"] - row["ms_with_summaries"] / row["ms"]) < 1e-9, row
assert "gpu" not in b, "no GPU on a CPU benchmark"
v = json.load(open(sys.argv[2]))
assert v["verdict"] == "passed" and v["mode"] == "benchmark", v
assert v["benchmark"] == b, "the verdict holds the benchmark's report"
PY
[[ -z $(ls -A "$work/tmp") ]] || fail "the temporary --log_dir was left behind: $(ls -A "$work/tmp")"
grep -q "^mnist-train $version passed: benchmark on CPU backend: seed job cpu [0-9.]* ms ([0-9.]*x with summaries); fastest step cpu .* images/s at batch [0-9]* | reason=ok node=[^ ]*\$" \
  "$work/termination" || fail "termination message: $(cat "$work/termination")"

# No temporary folder to be had: the summaries row is skipped with the reason, the rest runs.
TMPDIR="$work/no/such/folder" "$trainer" --benchmark --fake_data --backend cpu --benchmark_batches 50 \
  --benchmark_steps 1 --benchmark_out "$work/bench2.json" --termination_log "" >"$work/out2"
grep -A1 '== seed job with summaries' "$work/out2" | grep -q '^skipped: ' || fail "no skipped summaries row"
grep -q '"summaries_skipped"' "$work/bench2.json" || fail "JSON lacks the reason the row was skipped"
echo "PASS: CPU benchmark"
