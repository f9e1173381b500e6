#!/usr/bin/env bash
# outputs.sh TRAINER IDX_DIR: every output path is checked before the run does anything long (a
# name no file system holds: exit 2; something in a verdict file's place: exit 6), and the process
# survives what its caller leaves it: closed standard descriptors (no lock or data file becomes
# stdout), a file-size limit (`ulimit -f`: exit 6 naming the file, and a verdict), a termination-log
# path that is no regular file (exit 2 at start). Every verdict these runs write is valid
# (validate_verdict.py: docs/result.schema.json, promtool).
set -uo pipefail
trainer=$1 idx_dir=$2  # idx_dir: the raw MNIST idx files (scripts/fetch-test-data.sh)
here=$(cd "$(dirname "$0")" && pwd)
unset MNIST_MIRROR MNIST_BAKED_DATA NVIDIA_VISIBLE_DEVICES NODE_NAME  # the caller's data sources play no part
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# expect CODE WHAT -- COMMAND...: runs the command (stdout to $work/out, stderr to $work/err).
expect() {
  local want=$1 what=$2; shift 3
  "$@" >"$work/out" 2>"$work/err"
  local got=$?
  if [[ $got == "$want" ]]; then echo "ok   $want  $what: $(tail -n1 "$work/err")"
  else fail "$what: exit $got, expected $want"; cat "$work/out" "$work/err"; fi
}
# err_has TEXT: the last run's stderr holds TEXT (fixed string).
err_has() { grep -qF -- "$1" "$work/err" || fail "stderr lacks '$1': $(cat "$work/err")"; }
# not_started: the last run stopped before training or downloading.
not_started() {
  ! grep -qE 'Accuracy at step|Successfully downloaded' "$work/out" || fail "the run started before failing"
}
fake=(--fake_data --backend cpu)
t21=(--max_steps 21 --termination_log "")
name_max=$(getconf NAME_MAX "$work")
path_max=$(getconf PATH_MAX "$work")
# deep_path LENGTH: a path under $work of about LENGTH bytes, of components NAME_MAX allows.
deep_path() {
  local p=$work/deep
  while (( ${#p} < $1 - 200 )); do p+=/$(printf 'd%.0s' $(seq 150)); done
  while (( ${#p} < $1 )); do p+=/d; done
  echo "$p"
}

mkdir -p "$work/mirror"
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  gzip -c "$idx_dir/$f" >"$work/mirror/$f.gz"
done
real=(--backend cpu --max_steps 1 --log_dir "" --termination_log "" --download_attempts 1 --mirror "file://$work/mirror/")

# A folder in a verdict file's place: exit 6 before training, not after it.
mkdir -p "$work/logs1/result.json"
expect 6 "a folder under log_dir/result.json" -- "$trainer" "${fake[@]}" "${t21[@]}" --log_dir "$work/logs1"
err_has "$work/logs1/result.json: a folder is in the verdict's place (--log_dir)"; not_started
expect 6 "--download_only with a folder as --result_file" -- "$trainer" "${real[@]}" --download_only \
  --data_dir "$work/data1" --result_file "$work"
not_started; [[ ! -e $work/data1/train-images-idx3-ubyte.gz ]] || fail "downloaded before failing"

# The longest legal name is written (its temporary is cut to fit); one byte more is exit 2 at once.
longest=$work/$(printf 'r%.0s' $(seq $((name_max - 5)))).json
expect 0 "a --result_file of $name_max bytes" -- "$trainer" "${fake[@]}" "${t21[@]}" --log_dir "" --result_file "$longest"
python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["verdict"] == "passed"' "$longest" \
  || fail "no passing verdict in the $name_max-byte --result_file"
[[ $(ls "$work" | grep -c '^rrr') == 1 ]] || fail "temporaries left beside the long --result_file"
expect 2 "a --result_file of $((name_max + 1)) bytes" -- "$trainer" "${fake[@]}" "${t21[@]}" --log_dir "" \
  --result_file "$work/x$(basename "$longest")"
err_has "its file system allows (NAME_MAX)"; not_started
expect 2 "--dry_run finds it too" -- "$trainer" "${fake[@]}" "${t21[@]}" --dry_run --result_file "$work/x$(basename "$longest")"

# Folders near PATH_MAX: the folder itself could be made, the files written in it could not.
near=$(deep_path $((path_max - 30)))
expect 2 "--log_dir near PATH_MAX" -- "$trainer" "${fake[@]}" "${t21[@]}" --log_dir "$near"
err_has "(PATH_MAX)"; not_started
[[ ! -e $work/deep ]] || fail "a folder was made for a --log_dir that cannot hold its files"
expect 2 "--checkpoint_dir near PATH_MAX" -- "$trainer" "${fake[@]}" "${t21[@]}" --log_dir "" --checkpoint_dir "$near"
err_has "(PATH_MAX)"; not_started
expect 2 "--data_dir near PATH_MAX, before any download" -- "$trainer" "${real[@]}" --data_dir "$near"
err_has "--data_dir $work"; err_has "(PATH_MAX)"; not_started
[[ ! -e $work/deep ]] || fail "a folder was made for a path that cannot hold its files"

# Closed standard descriptors: /dev/null takes their place, so no lock or data file becomes
# stdout; a closed stdout is exit 6 at start (the log has nowhere to go), with a verdict.
"$trainer" "${fake[@]}" "${t21[@]}" --log_dir "" --checkpoint_dir "$work/ck3" --result_file "$work/r3.json" \
  --metrics_file "$work/m3.prom" >&- 2>"$work/err"
got=$?
[[ $got == 6 ]] && echo "ok   6  stdout closed: $(tail -n1 "$work/err")" || fail "stdout closed: exit $got"
err_has "stdout is closed"
python3 -c 'import json,sys; d = json.load(open(sys.argv[1])); assert d["exit_code"] == 6 and "stdout is closed" in d["error"]' \
  "$work/r3.json" || fail "no exit-6 verdict for a closed stdout"
"$trainer" "${fake[@]}" "${t21[@]}" --log_dir "" --checkpoint_dir "$work/ck3b" >&- 2>&-
got=$?
[[ $got == 6 ]] && echo "ok   6  stdout and stderr closed" || fail "stdout and stderr closed: exit $got"
"$trainer" "${real[@]}" --data_dir "$work/data3" >&- 2>"$work/err"
got=$?
[[ $got == 6 ]] && echo "ok   6  stdout closed before a download" || fail "stdout closed before a download: exit $got"
! grep -rqsE 'Accuracy|Training|downloaded|Extracting' "$work/ck3" "$work/ck3b" "$work/data3" \
  || fail "the log was written into a lock or data file: $(grep -rlsE 'Accuracy|Training|downloaded|Extracting' "$work/ck3" "$work/ck3b" "$work/data3")"
"$trainer" "${fake[@]}" "${t21[@]}" --log_dir "" --checkpoint_dir "$work/ck3c" <&- 2>&- >"$work/out"
got=$?
[[ $got == 0 ]] && echo "ok   0  stdin and stderr closed: the run passes" || fail "stdin and stderr closed: exit $got"
grep -q '^Final test accuracy' "$work/out" || fail "no log on stdout with stderr closed"
[[ ! -s $work/ck3c/.run.lock ]] || fail "the checkpoint lock holds text: $(cat "$work/ck3c/.run.lock")"

# A file-size limit: a write past it fails (EFBIG, never SIGXFSZ's silent death), exit 6 naming
# the file, and the verdict (a small file) is written.
# check_verdict FILE: FILE holds a failed verdict with exit code 6.
check_verdict() {
  python3 -c 'import json,sys; d = json.load(open(sys.argv[1])); assert d["exit_code"] == 6, d' "$1" \
    || fail "no exit-6 verdict in $1"
}
expect 6 "a checkpoint past ulimit -f" -- bash -c 'ulimit -f 50 && exec "$@"' - "$trainer" "${fake[@]}" "${t21[@]}" \
  --model softmax --log_dir "" --checkpoint_dir "$work/ck4" --result_file "$work/r4.json" --metrics_file "$work/m4.prom"
err_has "$work/ck4/model.ckpt: write failed: File too large"; check_verdict "$work/r4.json"
expect 6 "summaries past ulimit -f" -- bash -c 'ulimit -f 40 && exec "$@"' - "$trainer" "${fake[@]}" \
  --max_steps 200 --summary_every 1 --termination_log "" --log_dir "$work/logs4"
err_has "events.out.tfevents."; err_has "File too large"; check_verdict "$work/logs4/result.json"
expect 6 "a download into the cache past ulimit -f" -- bash -c 'ulimit -f 1000 && exec "$@"' - "$trainer" \
  "${real[@]}" --data_dir "$work/data4" --result_file "$work/r4d.json" --metrics_file "$work/m4d.prom"
err_has "$work/data4/train-images-idx3-ubyte.gz: write failed: File too large"; check_verdict "$work/r4d.json"

# The termination message goes into a regular file or nowhere: anything else is exit 2 at start.
mkfifo "$work/fifo"
for target in /proc/self/comm "$work/fifo" /dev/null; do
  expect 2 "--termination_log $target" -- timeout 60 "$trainer" "${fake[@]}" --max_steps 21 --log_dir "" --termination_log "$target"
  err_has "--termination_log $target: "; not_started
done

# Every verdict written above, against the schema or through promtool.
mapfile -t verdicts < <(find "$work" -path "$work/mirror" -prune -o -type f \( -name '*.json' -o -name '*.prom' \) -print | sort)
(( ${#verdicts[@]} >= 8 )) || fail "only ${#verdicts[@]} verdict files: ${verdicts[*]}"
python3 "$here/../app/validate_verdict.py" "${verdicts[@]}" && echo "ok   ${#verdicts[@]} verdict files valid" \
  || fail "invalid verdicts among ${verdicts[*]}"
[[ $(grep -lx 'mnist_train_exit_code{node="[^"]*"} 6' "$work/m3.prom" "$work/m4.prom" "$work/m4d.prom" | wc -l) == 3 ]] \
  || fail "exit 6 metrics: $(grep -H exit_code "$work"/m*.prom)"

(( failures == 0 )) && echo "PASS: outputs checked up front, descriptors and size limits survived"
exit $(( failures > 0 ))
