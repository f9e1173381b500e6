#!/usr/bin/env bash
# node_check.sh TRAINER SERVER IDX_DIR BACKEND FAKE_NVML: the verdict's pass criteria through the
# real binary, every verdict checked against docs/result.schema.json and every metrics file by
# promtool (tests/app/validate_verdict.py).
#   cpu   a broken optimiser (a learning rate that cannot move the weights) on real MNIST over the
#         sample's 500 iterations fails the default accuracy floor: exit 5, accuracy_below_floor;
#         --min_accuracy given beats the default; a --warn_only that names no check is exit 2.
#   cuda  (skipped, 77, only on a machine without a GPU) the real NVML and speed probe pass the
#         healthy GPU and name what they read; the stand-in NVML (FAKE_NVML, a scenario per fault)
#         fails the run with exit 4, reason unhealthy and the failing check; a missing NVML passes
#         with "health not available"; --warn_only demotes the failure; a speed line no GPU can
#         reach (--min_speed_ratio 1) fails with reason slow; a hung step ends as stalled.
set -uo pipefail
here=$(dirname "$0")
source "$here/serve_mnist.sh"
source "$here/gpu_present.sh"
trainer=$1 server=$2 idx_dir=$3 backend=$4 fake_nvml=$5
unset MNIST_MIRROR MNIST_BAKED_DATA MNIST_TEST_STALL_AT_STEP MNIST_TEST_NVML_LIBRARY FAKE_NVML_SCENARIO
[[ $backend == cpu ]] || require_gpu "$trainer" "$backend"
work=$(mktemp -d)
server_pid=
trap '[[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null; rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# run NAME EXPECTED_EXIT ARGS...: one run with its verdict in $work/NAME (result.json, metrics),
# the exit code checked and both files validated.
run() {
  local name=$1 want=$2
  shift 2
  mkdir -p "$work/$name"
  timeout -s KILL 300 "$trainer" --log_dir "$work/$name/logs" --metrics_file "$work/$name/node.prom" \
    --termination_log "" "$@" >"$work/$name/out" 2>"$work/$name/err"
  local rc=$?
  if [[ $rc == "$want" ]]; then echo "ok   $want  $name"
  else fail "$name: exit $rc, expected $want"; tail -5 "$work/$name/out" "$work/$name/err"; fi
  if [[ -f $work/$name/logs/result.json ]]; then
    python3 "$here/../app/validate_verdict.py" "$work/$name/logs/result.json" "$work/$name/node.prom" ||
      fail "$name: a verdict off its published form"
  elif [[ $want != 2 ]]; then
    fail "$name: no result.json"
  fi
}

# verdict NAME PYTHON-EXPRESSION...: each expression over the verdict `d` (and `checks`, its checks
# by name, the first of each) must be true.
verdict() {
  local name=$1
  shift
  python3 - "$work/$name/logs/result.json" "$@" <<'EOF' || failures=$((failures + 1))
import json, sys
d = json.load(open(sys.argv[1]))
checks = {}
for c in d["checks"]:
    checks.setdefault(c["name"], c)
bad = [e for e in sys.argv[2:] if not eval(e, {"d": d, "checks": checks})]
for e in bad:
    print(f"FAIL: {sys.argv[1]}: {e}")
if bad:
    print(json.dumps(d["checks"], indent=1)[:4000])
sys.exit(1 if bad else 0)
EOF
}

if [[ $backend == cpu ]]; then
  serve_mnist "$server" "$idx_dir" "$work"
  real=(--backend cpu --mirror "$mirror" --data_dir "$work/cache" --download_attempts 1)
  run broken_optimiser 5 "${real[@]}" --max_steps 500 --learning_rate 1e-10
  verdict broken_optimiser 'd["reason"] == "accuracy_below_floor" and d["exit_code"] == 5' \
    'checks["accuracy"]["status"] == "fail" and checks["accuracy"]["threshold"] == 0.9'
  grep -q '^mnist_train_passed{.*} 0$' "$work/broken_optimiser/node.prom" ||
    fail "the metrics do not say the run failed"
  run floor_given 5 --backend cpu --fake_data --max_steps 30 --min_accuracy 0.999
  verdict floor_given 'checks["accuracy"]["threshold"] == 0.999'
  run no_floor_for_short_runs 0 --backend cpu --fake_data --max_steps 30
  verdict no_floor_for_short_runs 'checks["accuracy"]["threshold"] is None'
  run warn_only_unknown 2 --backend cpu --fake_data --max_steps 1 --warn_only pcie_gen
  grep -q -- '--warn_only pcie_gen: not a check that can fail' "$work/warn_only_unknown/err" ||
    fail "no line naming the unknown check"
else
  short=(--backend "$backend" --fake_data --max_steps 50)
  run healthy 0 "${short[@]}"
  verdict healthy 'd["reason"] == "ok"' \
    'all(c["status"] != "fail" for c in d["checks"])' \
    'checks["fp32_throughput"]["status"] == "pass" and checks["memory_bandwidth"]["status"] == "pass"' \
    'checks["ecc_uncorrected_volatile"]["status"] == "pass"' \
    'checks["pcie_width"]["status"] == "pass"'
  grep -E '^(Speed of GPU|Health of GPU|Node check)' "$work/healthy/out"
  python3 -c 'import json,sys
for c in json.load(open(sys.argv[1]))["checks"]:
    print(f"  {c[\"name\"]:26} {c[\"status\"]:11} {c[\"value\"]!s:>10} {c[\"unit\"] or \"\":8} {c[\"detail\"][:90]}")' \
    "$work/healthy/logs/result.json"
  for fault in ecc_uncorrected:ecc_uncorrected_volatile pending_remap:remapped_rows_pending \
               thermal_throttle:clock_events_thermal pcie_x8_gen3:pcie_generation xid:xid_events; do
    scenario=${fault%%:*} check=${fault#*:}
    MNIST_TEST_NVML_LIBRARY=$fake_nvml FAKE_NVML_SCENARIO=$scenario run "$scenario" 4 "${short[@]}"
    verdict "$scenario" 'd["reason"] == "unhealthy" and d["exit_name"] == "gpu_unusable"' \
      "checks['$check']['status'] == 'fail' and checks['$check']['gpu'] == 0"
    grep -q "failed the check $check" "$work/$scenario/err" || fail "$scenario: no line naming $check"
  done
  verdict pcie_x8_gen3 'checks["pcie_width"]["status"] == "fail"'  # x8 of x16, beside Gen3 of 5
  MNIST_TEST_NVML_LIBRARY=$fake_nvml FAKE_NVML_SCENARIO=pending_remap run warned 0 "${short[@]}" \
    --warn_only remapped_rows_pending
  verdict warned 'checks["remapped_rows_pending"]["status"] == "warn"'
  MNIST_TEST_NVML_LIBRARY=/nonexistent/libnvidia-ml.so.1 run no_nvml 0 "${short[@]}"
  verdict no_nvml 'checks["nvml"]["status"] == "unavailable"' \
    '"health not available" in checks["nvml"]["detail"]'
  run slow 4 "${short[@]}" --min_speed_ratio 1
  verdict slow 'd["reason"] == "slow" and checks["fp32_throughput"]["status"] == "fail"'
  MNIST_TEST_STALL_AT_STEP=15 run stalled 4 "${short[@]}" --stall_timeout_s 3
  verdict stalled 'd["reason"] == "stalled"'
fi
((failures == 0)) || { echo "FAIL: $failures check(s) failed"; exit 1; }
echo "PASS: node_check ($backend)"
