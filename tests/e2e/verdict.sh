#!/usr/bin/env bash
# verdict.sh TRAINER [cpu|cuda]: the machine-readable verdict of real runs: log_dir/result.json,
# --result_file and --metrics_file after a success and after failures (exit 2, 3, 4, 5, 6, 7,
# SIGTERM 143), every one checked against docs/result.schema.json or by promtool
# (tests/app/validate_verdict.py: a missing jsonschema or promtool fails), with its reason, node
# and checks; the one-line termination message (written only into a regular file that already
# exists; never created; a link, FIFO or other non-file there is exit 2 at start), which ends in
# the reason and the node; and the final summary line. With `cuda`, a GPU run whose verdict must
# name the device as nvidia-smi sees it (exit 77, a skip, without a GPU).
set -uo pipefail
trainer=$1 backend=${2:-cpu}
here=$(cd "$(dirname "$0")" && pwd)
unset MNIST_MIRROR MNIST_BAKED_DATA NODE_NAME  # the caller's data sources and node play no part
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
version=$("$trainer" --version | awk '{print $2}')
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "FAIL: --version printed '$version'"; exit 1; }

source "$(dirname "$0")/check_json.sh"
# validate FILE...: each verdict file as published (JSON against the schema, .prom by promtool).
validate() { python3 "$here/../app/validate_verdict.py" "$@" || fail "not a valid verdict: $*"; }

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
  run_expect 0 "GPU run" -- env NODE_NAME=gpu-node-e2e "$trainer" --backend cuda --fake_data --max_steps 21 \
    --log_dir "$work/logs" --termination_log "$work/termination" --metrics_file "$work/gpu.prom"
  validate "$work/logs/result.json" "$work/gpu.prom"
  # CUDA's device 0 is nvidia-smi's device with the same UUID (their numbering may differ).
  nvidia-smi --query-gpu=uuid,name,pci.bus_id --format=csv,noheader >"$work/smi"
  driver=$(nvidia-smi | grep -o 'CUDA Version: [0-9.]*' | grep -o '[0-9.]*$')
  check_json "$work/logs/result.json" \
    'd["verdict"] == "passed" and d["backend"] == "cuda"' \
    'd["reason"] == "ok" and d["node"] == "gpu-node-e2e"' \
    'd["devices"]["kind"] == "gpu" and len(d["devices"]["used"]) == 1' \
    "[d['devices']['used'][0]['uuid'], d['devices']['used'][0]['name']] in [[f.strip() for f in l.split(',')[:2]] for l in open('$work/smi')]" \
    "d['devices']['used'][0]['pci_bus_id'].lower() in open('$work/smi').read().lower()" \
    're.fullmatch(r"\d+\.\d+", d["devices"]["used"][0]["compute_capability"])' \
    'd["devices"]["used"][0]["total_memory_bytes"] > 2**30' \
    "d['devices']['driver_version'] == '$driver'" \
    're.fullmatch(r"\d+\.\d+", d["devices"]["runtime_version"])' \
    'd["devices"]["visible_count"] == len(d["devices"]["visible"]) >= 1' \
    '[c["name"] for c in d["checks"] if c["gpu"] is None][-2:] == ["accuracy", "finite_loss"]'
  name=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["devices"]["used"][0]["name"])' "$work/logs/result.json")
  uuid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["devices"]["used"][0]["uuid"])' "$work/logs/result.json")
  grep -qF "$name $uuid" "$work/termination" && grep -q "^mnist-train $version passed: test accuracy .* images/s, " "$work/termination" \
    && grep -q " | reason=ok node=gpu-node-e2e" "$work/termination" \
    || fail "GPU termination message: $(cat "$work/termination")"
  grep -qF "mnist_train_gpu_info{node=\"gpu-node-e2e\",gpu=\"0\",uuid=\"$uuid\"" "$work/gpu.prom" \
    || fail "the metrics name no GPU $uuid: $(grep gpu_info "$work/gpu.prom")"
  (( failures == 0 )) && echo "PASS: GPU verdict names $name $uuid"
  exit $(( failures > 0 ))
fi

fake=(--fake_data --backend cpu --max_steps 21)
host=$(python3 -c 'import socket; print(socket.gethostname())')  # the node without NODE_NAME

# 0: a passing run writes result.json, --result_file, --metrics_file and the termination message.
: >"$work/termination"
run_expect 0 "trained" -- env NODE_NAME=node-a.example "$trainer" "${fake[@]}" --log_dir "$work/logs" \
  --result_file "$work/out dir/verdict.json" --termination_log "$work/termination" --metrics_file "$work/prom/ok.prom"
accuracy=$(sed -n 's/^Final test accuracy: \([0-9.]*\) after 18 training steps .*/\1/p' "$work/out")
[[ -n $accuracy ]] || fail "no final accuracy line"
summary=$(grep -A1 '^Final test accuracy: ' "$work/out" | tail -n1)
[[ $summary =~ ^Summary:\ 18\ training\ steps,\ [0-9]+\ images/s,\ [0-9.]+\ s\ in\ the\ loop,\ 0\.0\ s\ downloading\ \(0\.0\ MB\)$ ]] \
  || fail "summary line after the final accuracy: '$summary'"
check_json "$work/logs/result.json" \
  'd["program"] == "mnist-train"' "d['version'] == '$version'" \
  'd["verdict"] == "passed" and d["exit_code"] == 0 and d["exit_name"] == "ok" and "error" not in d' \
  'd["schema_version"] == 2 and d["reason"] == "ok" and d["exit_description"] == "ok"' \
  'd["node"] == "node-a.example" and d["hostname"]' \
  'd["mode"] == "train" and d["backend"] == "cpu" and d["model"] == "mlp"' \
  'd["batch_size"] == 100 and d["seed"] == 1 and d["max_steps"] == 21' \
  're.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", d["started_at"])' \
  'd["started_at"] <= d["finished_at"]' \
  'd["devices"]["kind"] == "cpu" and d["devices"]["used"] == []' \
  'd["dataset"]["name"] == "synthetic" and d["dataset"]["train_images"] == 10000' \
  'd["training"]["train_steps"] == 18 and d["training"]["steps_this_run"] == 18' \
  "abs(d['training']['final_accuracy'] - $accuracy) < 1e-9" \
  'd["training"]["best_accuracy"] >= d["training"]["final_accuracy"]' \
  'd["training"]["images_per_second"] > 0 and d["training"]["seconds"] > 0' \
  '[(c["name"], c["gpu"], c["status"]) for c in d["checks"]] == [("accuracy", None, "pass"), ("finite_loss", None, "pass")]' \
  "abs(d['checks'][0]['value'] - $accuracy) < 1e-9 and d['checks'][0]['threshold'] is None"
cmp -s "$work/logs/result.json" "$work/out dir/verdict.json" || fail "--result_file differs from result.json"
[[ $(wc -l <"$work/termination") == 1 ]] || fail "termination message is not one line"
grep -q "^mnist-train $version passed: test accuracy $accuracy (best [0-9.]*) after 18 steps, [0-9.]*[kMG]* images/s, CPU backend | reason=ok node=node-a.example\$" \
  "$work/termination" || fail "termination message: $(cat "$work/termination")"
grep -qx 'mnist_train_passed{node="node-a.example"} 1' "$work/prom/ok.prom" || fail "metrics: $(cat "$work/prom/ok.prom")"
grep -qx "mnist_train_test_accuracy{node=\"node-a.example\"} $accuracy" "$work/prom/ok.prom" \
  || fail "metrics accuracy: $(grep accuracy "$work/prom/ok.prom")"
[[ $(ls -A "$work/prom") == ok.prom ]] || fail "beside the metrics file: $(ls -A "$work/prom")"

# Without NODE_NAME the node is the host name; a NODE_NAME that is not one printable word is not used.
run_expect 0 "trained, no NODE_NAME" -- "$trainer" "${fake[@]}" --log_dir "" --result_file "$work/r_host.json" \
  --termination_log ""
check_json "$work/r_host.json" "d['node'] == '$host' == d['hostname']"
run_expect 0 "trained, NODE_NAME with a space" -- env NODE_NAME="two words" "$trainer" "${fake[@]}" --log_dir "" \
  --result_file "$work/r_badnode.json" --termination_log ""
check_json "$work/r_badnode.json" 'd["node"] == d["hostname"]'

# The gates can fail: a verdict off the schema, metrics promtool refuses.
mkdir -p "$work/bad"
python3 -c 'import json,sys; d = json.load(open(sys.argv[1])); d["reason"] = "fine"; json.dump(d, open(sys.argv[2], "w"))' \
  "$work/logs/result.json" "$work/bad/reason.json"
python3 "$here/../app/validate_verdict.py" "$work/bad/reason.json" >"$work/gate" && fail "a bogus reason passed the schema"
grep -q "reason: 'fine' is not one of" "$work/gate" || fail "the schema's finding: $(cat "$work/gate")"
printf 'mnist_train_passed{node="a\nb"} 1\n' >"$work/bad/line.prom"
python3 "$here/../app/validate_verdict.py" "$work/bad/line.prom" >"$work/gate" && fail "promtool passed a raw line break in a label"
grep -q "promtool" "$work/gate" || fail "promtool's finding: $(cat "$work/gate")"

# 2: a metrics file the collector would never read (not *.prom) is a bad flag, before anything runs.
run_expect 2 "--metrics_file not a .prom" -- "$trainer" "${fake[@]}" --log_dir "" --termination_log "" \
  --metrics_file "$work/metrics.txt"
grep -q -- "--metrics_file .*: not a NAME.prom file" "$work/err" || fail "no error naming --metrics_file: $(cat "$work/err")"
! grep -q 'Accuracy at step' "$work/out" || fail "trained before refusing --metrics_file"
[[ ! -e $work/metrics.txt ]] || fail "a non-.prom metrics file was written"

# A termination-message path that does not exist is never created; the run still passes.
run_expect 0 "--termination_log /nonexistent/x" -- "$trainer" "${fake[@]}" --log_dir "" --termination_log /nonexistent/x
[[ ! -e /nonexistent/x && ! -e /nonexistent ]] || fail "/nonexistent/x was created"
run_expect 0 "--termination_log naming a missing file" -- "$trainer" "${fake[@]}" --log_dir "" --termination_log "$work/missing"
[[ ! -e $work/missing ]] || fail "$work/missing was created"
# A link there is never written through: a bad flag, refused at start, its verdict still written.
echo precious >"$work/target"; ln -s "$work/target" "$work/link"
run_expect 2 "--termination_log naming a link" -- "$trainer" "${fake[@]}" --log_dir "" --termination_log "$work/link" \
  --result_file "$work/r_link.json" --metrics_file "$work/prom2/link.prom"
[[ $(cat "$work/target") == precious ]] || fail "written through a link"
grep -q -- "--termination_log $work/link: a symbolic link; the termination message goes only into a regular file" "$work/err" \
  || fail "no error naming the link"
! grep -q 'Accuracy at step' "$work/out" || fail "trained before refusing the link"
check_json "$work/r_link.json" 'd["exit_code"] == 2 and "a symbolic link" in d["error"]' \
  'd["reason"] == "usage" and d["exit_name"] == "bad_arguments"'
grep -qx 'mnist_train_exit_code{node="'"$host"'"} 2' "$work/prom2/link.prom" || fail "exit 2 metrics: $(cat "$work/prom2/link.prom")"
# A FIFO there is neither waited on nor written: refused at start likewise.
mkfifo "$work/fifo"
run_expect 2 "--termination_log naming a FIFO" -- timeout 60 "$trainer" "${fake[@]}" --log_dir "" --termination_log "$work/fifo"
grep -q -- "--termination_log $work/fifo: a FIFO" "$work/err" || fail "no error naming the FIFO"

# 6: an unwritable --checkpoint_dir.
: >"$work/a_file"; : >"$work/termination"
run_expect 6 "--checkpoint_dir under a file" -- env NODE_NAME=node-6 "$trainer" "${fake[@]}" --log_dir "$work/logs6" \
  --checkpoint_dir "$work/a_file/ckpt" --termination_log "$work/termination" --metrics_file "$work/prom6/m.prom"
check_json "$work/logs6/result.json" \
  'd["verdict"] == "failed" and d["exit_code"] == 6 and d["exit_name"] == "output_failed"' \
  'd["reason"] == "output_failed" and d["exit_description"] == "output failed" and d["checks"] == []' \
  '"--checkpoint_dir" in d["error"] and d["training"] is None'
grep -q "^mnist-train $version failed (exit 6, output failed): .*--checkpoint_dir.* | reason=output_failed node=node-6\$" "$work/termination" \
  || fail "exit 6 termination message: $(cat "$work/termination")"
grep -qx 'mnist_train_exit_code{node="node-6"} 6' "$work/prom6/m.prom" || fail "exit 6 metrics: $(cat "$work/prom6/m.prom")"

# 6: a passing run whose --result_file cannot be written is not a passing run.
run_expect 6 "--result_file naming a folder" -- "$trainer" "${fake[@]}" --log_dir "$work/logs6b" --result_file "$work" \
  --metrics_file "$work/prom6b/m.prom"
check_json "$work/logs6b/result.json" 'd["exit_code"] == 6 and "--result_file" in d["error"]'
grep -qx 'mnist_train_passed{node="'"$host"'"} 0' "$work/prom6b/m.prom" || fail "exit 6 after training: metrics say passed"
# 6: a folder in the metrics file's place, found before training.
mkdir -p "$work/prom6c/m.prom"
run_expect 6 "a folder as --metrics_file" -- "$trainer" "${fake[@]}" --log_dir "$work/logs6c" --metrics_file "$work/prom6c/m.prom"
! grep -q 'Accuracy at step' "$work/out" || fail "trained before refusing the --metrics_file folder"
check_json "$work/logs6c/result.json" 'd["exit_code"] == 6 and "--metrics_file" in d["error"]'
run_expect 6 "a --metrics_file under a file" -- "$trainer" "${fake[@]}" --log_dir "" --result_file "$work/r6d.json" \
  --metrics_file "$work/a_file/m.prom"
! grep -q 'Accuracy at step' "$work/out" || fail "trained before finding the --metrics_file folder unwritable"
check_json "$work/r6d.json" 'd["exit_code"] == 6 and "--metrics_file" in d["error"]'

# 7: a corrupt file on the only mirror.
printf 'not gzip' >"$work/bad/train-images-idx3-ubyte.gz"
run_expect 7 "corrupt data" -- "$trainer" --backend cpu --data_dir "$work/data" --download_attempts 1 \
  --mirror "file://$work/bad/" --log_dir "$work/logs7" --result_file "$work/r7.json" --termination_log "" \
  --metrics_file "$work/prom7/m.prom"
check_json "$work/r7.json" \
  'd["verdict"] == "failed" and d["exit_code"] == 7 and d["exit_name"] == "data_invalid"' \
  'd["reason"] == "data_invalid"' \
  '"train-images-idx3-ubyte.gz" in d["error"]' \
  'd["dataset"]["name"] == "mnist" and d["dataset"]["loaded"] is False' \
  "d['dataset']['data_dir'] == '$work/data'"
cmp -s "$work/logs7/result.json" "$work/r7.json" || fail "exit 7: result.json and --result_file differ"

# 3: no mirror reachable.
run_expect 3 "no mirror" -- "$trainer" --backend cpu --data_dir "$work/data3" --download_attempts 1 \
  --mirror "file://$work/nowhere/" --log_dir "" --result_file "$work/r3.json" --termination_log "$work/termination"
check_json "$work/r3.json" 'd["exit_code"] == 3 and d["reason"] == "data_unavailable" and d["exit_name"] == "data_unavailable"'
grep -q " | reason=data_unavailable node=" "$work/termination" || fail "exit 3 termination message: $(cat "$work/termination")"

# 2: a failure found before the outputs were checked still leaves its verdict (the folder is made).
run_expect 2 "batch larger than the training set" -- "$trainer" "${fake[@]}" --batch_size 20000 --log_dir "$work/logs2"
check_json "$work/logs2/result.json" 'd["exit_code"] == 2 and d["exit_name"] == "bad_arguments" and d["reason"] == "usage"'

# 4: a GPU asked for and not there; the verdict says what CUDA saw.
: >"$work/termination"
run_expect 4 "--backend cuda without a GPU" -- env CUDA_VISIBLE_DEVICES= "$trainer" --backend cuda --fake_data \
  --log_dir "$work/logs4" --termination_log "$work/termination" --metrics_file "$work/prom4/m.prom"
check_json "$work/logs4/result.json" \
  'd["exit_code"] == 4 and d["exit_name"] == "gpu_unusable" and d["backend"] is None' \
  'd["exit_description"] == "GPU unusable" and d["reason"] == "no_device"' \
  '"CUDA devices visible: 0" in d["devices"]["probe"] and d["devices"]["visible_count"] == 0'
grep -q "^mnist-train $version failed (exit 4, GPU unusable): .* | reason=no_device node=" "$work/termination" \
  || fail "exit 4 termination message: $(cat "$work/termination")"
grep -q 'reason="no_device"' "$work/prom4/m.prom" || fail "exit 4 metrics: $(cat "$work/prom4/m.prom")"

# 5: divergence; the failing check is finite_loss, named in the termination message.
: >"$work/termination"
run_expect 5 "divergence" -- "$trainer" --fake_data --backend cpu --learning_rate 1e30 --max_steps 40 --log_dir "$work/logs5" \
  --termination_log "$work/termination" --metrics_file "$work/prom5/m.prom"
check_json "$work/logs5/result.json" \
  'd["exit_code"] == 5 and d["reason"] == "diverged" and d["training"] is None' \
  '[(c["name"], c["status"]) for c in d["checks"]] == [("finite_loss", "fail")]'
grep -q " | reason=diverged node=[^ ]* check=finite_loss NaN or Inf: training diverged" "$work/termination" \
  || fail "exit 5 termination message: $(cat "$work/termination")"
grep -q 'mnist_train_check_status{node="[^"]*",gpu="",uuid="",model="",check="finite_loss",status="fail"} 1' "$work/prom5/m.prom" \
  || fail "exit 5 metrics: $(grep check_status "$work/prom5/m.prom")"

# 143: SIGTERM mid-training, a checkpoint saved first.
: >"$work/termination"
"$trainer" --fake_data --backend cpu --max_steps 100000000 --checkpoint_dir "$work/ckpt" \
  --log_dir "$work/logs143" --termination_log "$work/termination" --metrics_file "$work/prom143/m.prom" >"$work/out" 2>"$work/err" &
pid=$!
for _ in $(seq 400); do grep -q 'Accuracy at step 20:' "$work/out" && break; sleep 0.05; done
kill -TERM "$pid"; wait "$pid"; got=$?
[[ $got == 143 ]] && echo "ok   143  SIGTERM" || fail "SIGTERM: exit $got"
check_json "$work/logs143/result.json" \
  'd["verdict"] == "failed" and d["exit_code"] == 143 and d["exit_name"] == "terminated"' \
  'd["reason"] == "terminated" and d["exit_description"] == "terminated (SIGTERM)"' \
  '"checkpoint saved in" in d["error"]'
grep -q "^mnist-train $version failed (exit 143, terminated (SIGTERM)): stopped by SIGTERM.* | reason=terminated node=" "$work/termination" \
  || fail "SIGTERM termination message: $(cat "$work/termination")"
grep -qx 'mnist_train_exit_code{node="'"$host"'"} 143' "$work/prom143/m.prom" || fail "SIGTERM metrics: $(cat "$work/prom143/m.prom")"

# --dry_run writes nothing.
: >"$work/termination"
run_expect 0 "--dry_run" -- "$trainer" "${fake[@]}" --dry_run --log_dir "$work/logs_dry" --result_file "$work/dry.json" \
  --termination_log "$work/termination" --metrics_file "$work/dry.prom"
[[ ! -e $work/logs_dry && ! -e $work/dry.json && ! -e $work/dry.prom && ! -s $work/termination ]] || fail "--dry_run wrote a verdict"

# Every verdict these runs wrote, against the schema or through promtool.
mapfile -t verdicts < <(find "$work" -path "$work/bad" -prune -o -type f \( -name result.json -o -name 'r*.json' \
  -o -name verdict.json -o -name '*.prom' \) -print | sort)
(( ${#verdicts[@]} >= 20 )) || fail "only ${#verdicts[@]} verdict files found: ${verdicts[*]}"
validate "${verdicts[@]}" && echo "ok   ${#verdicts[@]} verdict files valid (schema, promtool)"

(( failures == 0 )) && echo "PASS: verdicts as documented"
exit $(( failures > 0 ))
