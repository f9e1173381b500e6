#!/usr/bin/env bash
# verdict.sh TRAINER [cpu|cuda]: the machine-readable verdict of real runs: log_dir/result.json and
# --result_file after a success and after failures (exit 2, 4, 6, 7, SIGTERM 143), the one-line
# termination message (written only into a regular file that already exists; never created; a
# link, FIFO or other non-file there is exit 2 at start), and the final summary line. With `cuda`, a GPU run whose verdict must name the device as
# nvidia-smi sees it (exit 77, a skip, without a GPU).
set -uo pipefail
trainer=$1 backend=${2:-cpu}
unset MNIST_MIRROR MNIST_BAKED_DATA  # the caller's data sources play no part
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
version=$("$trainer" --version | awk '{print $2}')
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "FAIL: --version printed '$version'"; exit 1; }

# check_json FILE PYTHON-EXPRESSION...: each expression (over the document `d`) must be true.
check_json() {
  local file=$1; shift
  python3 - "$file" "$@" <<'EOF' || failures=$((failures + 1))
import json, sys
path, checks = sys.argv[1], sys.argv[2:]
try:
    d = json.load(open(path))
except Exception as e:
    print(f"FAIL: {path}: not JSON: {e}"); sys.exit(1)
bad = [c for c in checks if not eval(c, {"d": d, "re": __import__("re")})]
for c in bad:
    print(f"FAIL: {path}: {c}")
if bad:
    print(json.dumps(d, indent=1)[:3000])
sys.exit(1 if bad else 0)
EOF
}

# run_expect CODE WHAT -- COMMAND...: runs the command, expects exit CODE.
run_expect() {
  local want=$1 what=$2; shift 3
  "$@" >"$work/out" 2>"$work/err"
  local got=$?
  if [[ $got == "$want" ]]; then echo "ok   $want  $what"
  else fail "$what: exit $got, expected $want"; cat "$work/out" "$work/err"; fi
}

if [[ $backend == cuda ]]; then
  if ! nvidia-smi -L >/dev/null 2>&1; then echo "SKIP: no GPU (nvidia-smi -L failed)"; exit 77; fi
  : >"$work/termination"
  run_expect 0 "GPU run" -- "$trainer" --backend cuda --fake_data --max_steps 21 --log_dir "$work/logs" \
    --termination_log "$work/termination"
  # CUDA's device 0 is nvidia-smi's device with the same UUID (their numbering may differ).
  nvidia-smi --query-gpu=uuid,name,pci.bus_id --format=csv,noheader >"$work/smi"
  driver=$(nvidia-smi | grep -o 'CUDA Version: [0-9.]*' | grep -o '[0-9.]*$')
  check_json "$work/logs/result.json" \
    'd["verdict"] == "passed" and d["backend"] == "cuda"' \
    'd["devices"]["kind"] == "gpu" and len(d["devices"]["used"]) == 1' \
    "[d['devices']['used'][0]['uuid'], d['devices']['used'][0]['name']] in [[f.strip() for f in l.split(',')[:2]] for l in open('$work/smi')]" \
    "d['devices']['used'][0]['pci_bus_id'].lower() in open('$work/smi').read().lower()" \
    're.fullmatch(r"\d+\.\d+", d["devices"]["used"][0]["compute_capability"])' \
    'd["devices"]["used"][0]["total_memory_bytes"] > 2**30' \
    "d['devices']['driver_version'] == '$driver'" \
    're.fullmatch(r"\d+\.\d+", d["devices"]["runtime_version"])' \
    'd["devices"]["visible_count"] == len(d["devices"]["visible"]) >= 1'
  name=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["devices"]["used"][0]["name"])' "$work/logs/result.json")
  uuid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["devices"]["used"][0]["uuid"])' "$work/logs/result.json")
  grep -qF "$name $uuid" "$work/termination" && grep -q "^mnist-train $version passed: test accuracy .* images/s, " "$work/termination" \
    || fail "GPU termination message: $(cat "$work/termination")"
  (( failures == 0 )) && echo "PASS: GPU verdict names $name $uuid"
  exit $(( failures > 0 ))
fi

fake=(--fake_data --backend cpu --max_steps 21)

# 0: a passing run writes result.json, --result_file and the termination message.
: >"$work/termination"
run_expect 0 "trained" -- "$trainer" "${fake[@]}" --log_dir "$work/logs" --result_file "$work/out dir/verdict.json" \
  --termination_log "$work/termination"
accuracy=$(sed -n 's/^Final test accuracy: \([0-9.]*\) after 18 training steps .*/\1/p' "$work/out")
[[ -n $accuracy ]] || fail "no final accuracy line"
summary=$(grep -A1 '^Final test accuracy: ' "$work/out" | tail -n1)
[[ $summary =~ ^Summary:\ 18\ training\ steps,\ [0-9]+\ images/s,\ [0-9.]+\ s\ in\ the\ loop,\ 0\.0\ s\ downloading\ \(0\.0\ MB\)$ ]] \
  || fail "summary line after the final accuracy: '$summary'"
check_json "$work/logs/result.json" \
  'd["program"] == "mnist-train"' "d['version'] == '$version'" \
  'd["verdict"] == "passed" and d["exit_code"] == 0 and d["exit_name"] == "ok" and "error" not in d' \
  'd["mode"] == "train" and d["backend"] == "cpu" and d["model"] == "mlp"' \
  'd["batch_size"] == 100 and d["seed"] == 1 and d["max_steps"] == 21' \
  're.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", d["started_at"])' \
  'd["started_at"] <= d["finished_at"]' \
  'd["devices"]["kind"] == "cpu" and d["devices"]["used"] == []' \
  'd["dataset"]["name"] == "synthetic" and d["dataset"]["train_images"] == 10000' \
  'd["training"]["train_steps"] == 18 and d["training"]["steps_this_run"] == 18' \
  "abs(d['training']['final_accuracy'] - $accuracy) < 1e-9" \
  'd["training"]["best_accuracy"] >= d["training"]["final_accuracy"]' \
  'd["training"]["images_per_second"] > 0 and d["training"]["seconds"] > 0'
cmp -s "$work/logs/result.json" "$work/out dir/verdict.json" || fail "--result_file differs from result.json"
[[ $(wc -l <"$work/termination") == 1 ]] || fail "termination message is not one line"
grep -q "^mnist-train $version passed: test accuracy $accuracy (best [0-9.]*) after 18 steps, [0-9.]*[kMG]* images/s, CPU backend\$" \
  "$work/termination" || fail "termination message: $(cat "$work/termination")"

# A termination-message path that does not exist is never created; the run still passes.
run_expect 0 "--termination_log /nonexistent/x" -- "$trainer" "${fake[@]}" --log_dir "" --termination_log /nonexistent/x
[[ ! -e /nonexistent/x && ! -e /nonexistent ]] || fail "/nonexistent/x was created"
run_expect 0 "--termination_log naming a missing file" -- "$trainer" "${fake[@]}" --log_dir "" --termination_log "$work/missing"
[[ ! -e $work/missing ]] || fail "$work/missing was created"
# A link there is never written through: a bad flag, refused at start, its verdict still written.
echo precious >"$work/target"; ln -s "$work/target" "$work/link"
run_expect 2 "--termination_log naming a link" -- "$trainer" "${fake[@]}" --log_dir "" --termination_log "$work/link" \
  --result_file "$work/r_link.json"
[[ $(cat "$work/target") == precious ]] || fail "written through a link"
grep -q -- "--termination_log $work/link: a symbolic link; the termination message goes only into a regular file" "$work/err" \
  || fail "no error naming the link"
! grep -q 'Accuracy at step' "$work/out" || fail "trained before refusing the link"
check_json "$work/r_link.json" 'd["exit_code"] == 2 and "a symbolic link" in d["error"]'
# A FIFO there is neither waited on nor written: refused at start likewise.
mkfifo "$work/fifo"
run_expect 2 "--termination_log naming a FIFO" -- timeout 60 "$trainer" "${fake[@]}" --log_dir "" --termination_log "$work/fifo"
grep -q -- "--termination_log $work/fifo: a FIFO" "$work/err" || fail "no error naming the FIFO"

# 6: an unwritable --checkpoint_dir.
: >"$work/a_file"; : >"$work/termination"
run_expect 6 "--checkpoint_dir under a file" -- "$trainer" "${fake[@]}" --log_dir "$work/logs6" \
  --checkpoint_dir "$work/a_file/ckpt" --termination_log "$work/termination"
check_json "$work/logs6/result.json" \
  'd["verdict"] == "failed" and d["exit_code"] == 6 and d["exit_name"] == "output failed"' \
  '"--checkpoint_dir" in d["error"] and d["training"] is None'
grep -q "^mnist-train $version failed (exit 6, output failed): .*--checkpoint_dir" "$work/termination" \
  || fail "exit 6 termination message: $(cat "$work/termination")"

# 6: a passing run whose --result_file cannot be written is not a passing run.
run_expect 6 "--result_file naming a folder" -- "$trainer" "${fake[@]}" --log_dir "$work/logs6b" --result_file "$work"
check_json "$work/logs6b/result.json" 'd["exit_code"] == 6 and "--result_file" in d["error"]'

# 7: a corrupt file on the only mirror.
mkdir -p "$work/bad"; printf 'not gzip' >"$work/bad/train-images-idx3-ubyte.gz"
run_expect 7 "corrupt data" -- "$trainer" --backend cpu --data_dir "$work/data" --download_attempts 1 \
  --mirror "file://$work/bad/" --log_dir "$work/logs7" --result_file "$work/r7.json" --termination_log ""
check_json "$work/r7.json" \
  'd["verdict"] == "failed" and d["exit_code"] == 7 and d["exit_name"] == "data invalid"' \
  '"train-images-idx3-ubyte.gz" in d["error"]' \
  'd["dataset"]["name"] == "mnist" and d["dataset"]["loaded"] is False' \
  "d['dataset']['data_dir'] == '$work/data'"
cmp -s "$work/logs7/result.json" "$work/r7.json" || fail "exit 7: result.json and --result_file differ"

# 2: a failure found before the outputs were checked still leaves its verdict (the folder is made).
run_expect 2 "batch larger than the training set" -- "$trainer" "${fake[@]}" --batch_size 20000 --log_dir "$work/logs2"
check_json "$work/logs2/result.json" 'd["exit_code"] == 2 and d["exit_name"] == "bad arguments"'

# 4: a GPU asked for and not there; the verdict says what CUDA saw.
run_expect 4 "--backend cuda without a GPU" -- env CUDA_VISIBLE_DEVICES= "$trainer" --backend cuda --fake_data \
  --log_dir "$work/logs4" --termination_log ""
check_json "$work/logs4/result.json" \
  'd["exit_code"] == 4 and d["exit_name"] == "GPU unusable" and d["backend"] is None' \
  '"CUDA devices visible: 0" in d["devices"]["probe"] and d["devices"]["visible_count"] == 0'

# 143: SIGTERM mid-training, a checkpoint saved first.
: >"$work/termination"
"$trainer" --fake_data --backend cpu --max_steps 100000000 --checkpoint_dir "$work/ckpt" \
  --log_dir "$work/logs143" --termination_log "$work/termination" >"$work/out" 2>"$work/err" &
pid=$!
for _ in $(seq 400); do grep -q 'Accuracy at step 20:' "$work/out" && break; sleep 0.05; done
kill -TERM "$pid"; wait "$pid"; got=$?
[[ $got == 143 ]] && echo "ok   143  SIGTERM" || fail "SIGTERM: exit $got"
check_json "$work/logs143/result.json" \
  'd["verdict"] == "failed" and d["exit_code"] == 143 and d["exit_name"] == "terminated (SIGTERM)"' \
  '"checkpoint saved in" in d["error"]'
grep -q "^mnist-train $version failed (exit 143, terminated (SIGTERM)): stopped by SIGTERM" "$work/termination" \
  || fail "SIGTERM termination message: $(cat "$work/termination")"

# --dry_run writes nothing.
: >"$work/termination"
run_expect 0 "--dry_run" -- "$trainer" "${fake[@]}" --dry_run --log_dir "$work/logs_dry" --result_file "$work/dry.json" \
  --termination_log "$work/termination"
[[ ! -e $work/logs_dry && ! -e $work/dry.json && ! -s $work/termination ]] || fail "--dry_run wrote a verdict"

(( failures == 0 )) && echo "PASS: verdicts as documented"
exit $(( failures > 0 ))
