#!/usr/bin/env bash
# data_signals.sh TRAINER SERVER: `mnist-train --download_only` stopped mid-download of a slow
# mirror exits 143 on SIGTERM and 130 on SIGINT promptly (checked: within 8 s, well before the
# 12 s the download takes, with room for a loaded machine), saying what it was doing, and
# leaves nothing under the file's final name; a run waiting for another process's download (the
# shared cache's lock) stops as promptly.
set -uo pipefail
unset MNIST_MIRROR MNIST_BAKED_DATA  # read by the trainer; the test passes --mirror
trainer=$1 server=$2
work=$(mktemp -d)
server_pid=
cleanup() { [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# Never verified (the runs are stopped first): 8 MB at 64 KiB per 100 ms takes 12 s to send.
mkdir -p "$work/mirror"
head -c 8000000 /dev/zero >"$work/mirror/train-images-idx3-ubyte.gz"
"$server" "$work/mirror" "$work/port" --chunk_bytes 65536 --chunk_delay_ms 100 >"$work/requests" &
server_pid=$!
for _ in $(seq 600); do [[ -s $work/port ]] && break; sleep 0.05; done  # 30 s at most
[[ -s $work/port ]] || { echo "FAIL: the loopback server did not start"; exit 1; }
mirror="http://127.0.0.1:$(cat "$work/port")/"

start_run() {  # start_run NAME: a background download into $work/NAME; sets pid
  "$trainer" --download_only --mirror "$mirror" --data_dir "$work/$1" --log_dir "$work/logs" \
    --download_attempts 3 >"$work/$1.out" 2>"$work/$1.err" &
  pid=$!
}
wait_for_requests() {  # wait_for_requests N: until the server has seen N requests (30 s at most)
  for _ in $(seq 600); do
    (( $(grep -c '^request ' "$work/requests") >= $1 )) && return 0
    sleep 0.05
  done
  return 1
}
stop_and_check() {  # stop_and_check PID SIGNAL CODE NAME CACHE WHAT: exits CODE within 8 s
  local run_pid=$1 signal=$2 want=$3 name=$4 cache=$work/$5 what=$6
  local start got elapsed
  start=$(date +%s.%N)
  kill "-$signal" "$run_pid"
  wait "$run_pid"; got=$?
  elapsed=$(echo "$(date +%s.%N) - $start" | bc)
  if [[ $got != "$want" ]]; then fail "$name: exit $got after SIG$signal, expected $want"; cat "$work/$name.err"; fi
  awk -v e="$elapsed" 'BEGIN { exit !(e < 8.0) }' || fail "$name: took $elapsed s to stop"
  grep -q "^mnist-train: error: stopped by SIG$signal $what" "$work/$name.err" \
    || { fail "$name: no 'stopped by SIG$signal $what' line"; cat "$work/$name.err"; }
  [[ ! -e $cache/train-images-idx3-ubyte.gz ]] || fail "$name: a partial file sits under the final name"
  if ls -A "$cache" 2>/dev/null | grep -q -v -x '.lock'; then fail "$name: leftovers: $(ls -A "$cache")"; fi
  echo "ok   $name: exit $got in $elapsed s: $(tail -n1 "$work/$name.err")"
}

start_run term
wait_for_requests 1 || fail "term: no request reached the server"
sleep 0.5
stop_and_check "$pid" TERM 143 term term "while downloading train-images-idx3-ubyte.gz"

start_run int
wait_for_requests 2 || fail "int: no request reached the server"
sleep 0.5
stop_and_check "$pid" INT 130 int int "while downloading train-images-idx3-ubyte.gz"

# Two runs on one cache: the second waits on the lock while the first downloads.
start_run shared; first=$pid
wait_for_requests 3 || fail "shared: no request reached the server"
"$trainer" --download_only --mirror "$mirror" --data_dir "$work/shared" --log_dir "$work/logs" \
  >"$work/waiter.out" 2>"$work/waiter.err" &
waiter=$!
# Signal the waiter only once it holds the lock file open (waiting on it): a fixed sleep raced a
# slow start (an ASan build) that had not installed its handlers yet.
for _ in $(seq 600); do
  ls -l "/proc/$waiter/fd" 2>/dev/null | grep -q '/\.lock$' && break
  sleep 0.05
done
sleep 0.2
(( $(grep -c '^request ' "$work/requests") == 3 )) || fail "the waiting run did not wait for the lock"
stop_and_check "$waiter" TERM 143 waiter shared "while waiting for another process's download"
stop_and_check "$first" TERM 143 shared shared "while downloading train-images-idx3-ubyte.gz"

(( failures == 0 )) && echo "PASS: downloads stop promptly on SIGTERM and SIGINT"
exit $(( failures > 0 ))
