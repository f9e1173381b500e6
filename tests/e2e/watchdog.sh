#!/usr/bin/env bash
# watchdog.sh TRAINER: a run whose training step hangs (the loop's test-only stand-in for a hung GPU
# call, MNIST_TEST_STALL_AT_STEP: src/train/loop.h) ends after --stall_timeout_s without progress
# with exit 4, one error line naming the stall and its phase, and a verdict (result.json, the
# termination message) with reason "stalled". The same run without the stand-in passes under a
# short limit: a healthy run sends its heartbeats.
set -uo pipefail
trainer=$1
unset MNIST_MIRROR MNIST_BAKED_DATA MNIST_TEST_STALL_AT_STEP  # the caller's environment plays no part
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

source "$(dirname "$0")/check_json.sh"

# The stand-in ignores SIGTERM, as a hung CUDA call does: a watchdog that never fires is killed
# here (exit 137), which fails the check below instead of hanging the suite.
: >"$work/termination"
MNIST_TEST_STALL_AT_STEP=15 timeout -s KILL 120 "$trainer" --backend cpu --fake_data --max_steps 40 \
  --log_dir "$work/logs" --termination_log "$work/termination" --stall_timeout_s 2 \
  >"$work/out" 2>"$work/err"
rc=$?
if [[ $rc == 4 ]]; then echo "ok   4  a hung training step ends the run"
else fail "hung step: exit $rc, expected 4"; cat "$work/out" "$work/err"; fi
grep -Eq '^mnist-train: error: stalled: no progress for [0-9.]+ s in phase training \(its limit is 2 s\)' \
  "$work/err" || { fail "no stall line on stderr"; cat "$work/err"; }
grep -q '^Accuracy at step 10: ' "$work/out" || fail "the run did not train up to the stall"
grep -q '^Accuracy at step 20: ' "$work/out" && fail "the run went past the stalled step"
check_json "$work/logs/result.json" \
  'd["verdict"] == "failed" and d["exit_code"] == 4 and d["reason"] == "stalled"' \
  '"phase training" in d["error"]'
grep -q ' reason=stalled ' "$work/termination" || { fail "termination message"; cat "$work/termination"; }
python3 "$(dirname "$0")/../app/validate_verdict.py" "$work/logs/result.json" ||
  fail "the stalled run's verdict is off docs/result.schema.json"

# A healthy run of several seconds, the limit well above any step or evaluation: no stall.
timeout -s KILL 300 "$trainer" --backend cpu --fake_data --max_steps 600 --log_dir "$work/ok" \
  --stall_timeout_s 5 >"$work/out" 2>"$work/err"
rc=$?
if [[ $rc == 0 ]]; then echo "ok   0  a healthy run under --stall_timeout_s 5"
else fail "healthy run: exit $rc, expected 0"; cat "$work/err"; fi
grep -q stalled "$work/err" && fail "a healthy run reported a stall"
check_json "$work/ok/result.json" 'd["verdict"] == "passed" and d["reason"] == "ok"'

# --benchmark's sections (timed steps, evaluations, the seed job, time to 98 %) send heartbeats
# too: a CPU benchmark of tens of seconds passes under a 4 s limit (its longest silent stretch,
# building a backend or one evaluation, takes well under a second here, a few under ASan).
timeout -s KILL 600 "$trainer" --benchmark --fake_data --backend cpu --benchmark_batches 50 \
  --benchmark_steps 3 --stall_timeout_s 4 --termination_log "" >"$work/out" 2>"$work/err"
rc=$?
if [[ $rc == 0 ]]; then echo "ok   0  a CPU benchmark under --stall_timeout_s 4"
else fail "benchmark: exit $rc, expected 0"; tail -3 "$work/err"; fi

if ((failures > 0)); then echo "$failures failure(s)"; exit 1; fi
echo "watchdog: all checks passed"
